"""The standard benchmark: ten SVHN-sized (32x32x3) DCGANs, batch 64 each.

  python -m gansynth.tools.bench --config configs/bench_svhn.py

Only shapes matter to gansynth.tools.bench (it feeds random images), so no data set
is read; `--config.gan.architecture=study` benchmarks the study's nets.
"""

from gansynth import config_schema


def get_config(variant: str = ""):
  config = config_schema.default_config()
  config.data.name = "svhn_cropped"
  config.data.image_size = 32
  config.data.channels = 3
  config.data.num_classes = 10
  config.gan.architecture = "dcgan"
  config.gan.g_width = 64
  config.gan.d_width = 64
  config.gan.batch_size = 64
  return config_schema.apply_variant(config, variant)
