"""What verified checkpoints cost: save and restore with and without digests.

  python -m gansynth.tools.store_bench --config configs/bench_svhn.py --dir /tmp/sb

Saves the config's initial GAN state (the size a run checkpoints) plainly
with Orbax and with `store.save` (digests), restores it plainly and with
`store.restore_step` (verified), and prints the seconds of each and of the
digests alone. Only shapes matter, so no data set is read.
"""

import os
import shutil
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import orbax.checkpoint as ocp

from gansynth.gan import gan_train
from gansynth.runtime import store

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).")
flags.DEFINE_string("dir", "/tmp/gansynth_store_bench", "Scratch directory "
                    "(deleted first and at the end).")
flags.DEFINE_integer("repeats", 2, "Timed repeats of each; the best counts.")


def best(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return min(times)


def main(argv):
  del argv
  config = FLAGS.config
  shutil.rmtree(FLAGS.dir, ignore_errors=True)
  state = gan_train.create_state(config, jax.random.key(0))
  meta = gan_train.store_meta(config)
  size = sum(x.nbytes for x in jax.tree.leaves(state))
  abstract = gan_train.abstract_state(config)
  plain = store.manager(os.path.join(FLAGS.dir, "plain"), max_to_keep=1)
  verified = store.manager(os.path.join(FLAGS.dir, "verified"), max_to_keep=1)
  steps = iter(range(1, 1000))

  def plain_save():
    plain.save(next(steps), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    plain.wait_until_finished()

  times = {
      "digests alone": best(lambda: store.leaf_digests(state), FLAGS.repeats),
      "save, plain Orbax": best(plain_save, FLAGS.repeats),
      "save, with digests": best(
          lambda: store.save(verified, next(steps), state, meta),
          FLAGS.repeats),
      "restore, plain Orbax": best(lambda: plain.restore(
          plain.latest_step(), args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract)))["state"],
                                   FLAGS.repeats),
      "restore, verified": best(lambda: store.restore_step(
          verified, verified.latest_step(), abstract, meta), FLAGS.repeats),
  }
  print(f"state: {size / 2**20:.0f} MiB in {len(jax.tree.leaves(state))} "
        f"arrays; best of {FLAGS.repeats}, {jax.devices()[0].platform}")
  for name, seconds in times.items():
    print(f"  {name:22s} {seconds:6.2f} s")
  shutil.rmtree(FLAGS.dir, ignore_errors=True)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
