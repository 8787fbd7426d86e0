"""Running it reliably: the Orbax store, devices and hosts, preemption, metrics, locks, progress, PNG grids."""
