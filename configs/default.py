"""Every default of the schema (gansynth/config_schema.py), unchanged.

  python -m gansynth.main --config configs/default.py --workdir /tmp/default
"""

from gansynth import config_schema


def get_config(variant: str = ""):
  return config_schema.apply_variant(config_schema.default_config(),
                                      variant)
