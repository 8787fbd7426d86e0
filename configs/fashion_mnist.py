"""Ten class DCGANs on Fashion-MNIST (28x28 grey clothing, 10 classes).

  python -m gansynth.main --config configs/fashion_mnist.py:cpu --workdir /tmp/fm

The GAN recipe of configs/mnist.py (DCGAN, Adam 2e-4 beta1 0.5, BCE, EMA
generator, minibatch std in D); the classifier is tested on the official
10,000-image test split. No procedural source: the digit renderer does not
draw clothes. The full-size config is meant for an accelerator; `:cpu` is
the run for 2 CPU cores (widths 32, batch 32, 7,000 steps: about 29 minutes
of GAN training on an idle 2-core Xeon; synthesis from the raw generator).
Result of `:cpu`, trained on `train[:54000]` and scored on the held-out
`train[54000:]`: real 90.6%, GAN 86.3%; on the official test split, mean of
classifier seeds 0 and 1: real 90.4%, GAN 86.0% (docs/gan_quality.md).
Offline, import the IDX files first (Debian: apt-get install
dataset-fashion-mnist):
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
  config.gan.ema_decay = 0.999
  config.gan.ema_start = 1000
  config.gan.mbstd = True
  config.gan.train_steps = 10000
  config.gan.log_every = 250
  config.gan.checkpoint_every = 1000
  config.gan.sample_every = 1000
  config.synthesis.num_per_class = 6000  # Fashion-MNIST's images per class
  config.classifier.sources = "real,gan"
  config.classifier.epochs = 10
  config.classifier.schedule = "cosine"
  config.classifier.shift = 2
  if variant == "cpu":  # 2 CPU cores, ~29 minutes of GAN training
    config.gan.update(g_width=32, d_width=32, batch_size=32,
                      train_steps=7000)
    config.classifier.epochs = 3
    # Synthesize from the raw generator, which scored higher than the EMA
    # generator (decay 0.999) at 7,000 steps (docs/gan_quality.md).
    config.synthesis.use_ema = False
    return config
  return config_schema.apply_variant(config, variant)
