"""Ten class DCGANs on Fashion-MNIST (28x28 grey clothing, 10 classes).

  python -m gansynth.main --config configs/fashion_mnist.py --workdir /tmp/fm

The recipe of configs/mnist.py (DCGAN, Adam 2e-4 beta1 0.5, BCE); the
classifier is tested on the official 10,000-image test split. No procedural
source: the digit renderer does not draw clothes. Offline, import the IDX
files first (Debian: apt-get install dataset-fashion-mnist):
  python -m gansynth.main --config configs/fashion_mnist.py --workdir /tmp/fm \\
      --config.data.source_dir=/usr/share/datasets/fashion-mnist \\
      --config.stages=prepare
"""

from gansynth import config_schema


def get_config(variant: str = ""):
  config = config_schema.default_config()
  config.data.name = "fashion_mnist"
  config.data.image_size = 28
  config.data.channels = 1
  config.gan.architecture = "dcgan"
  config.gan.loss = "bce"
  config.gan.train_steps = 5000
  config.gan.checkpoint_every = 500
  config.gan.sample_every = 500
  config.synthesis.num_per_class = 6000
  config.classifier.sources = "real,gan"
  return config_schema.apply_variant(config, variant)
