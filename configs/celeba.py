"""One unconditional DCGAN on CelebA faces at 64x64 (Radford et al.).

  python -m gansynth.main --config configs/celeba.py --workdir /tmp/celeba

5x5 kernels with stride 2, batch norm, ReLU in the generator and leaky ReLU
in the discriminator, BCE loss, Adam 2e-4 beta1 0.5. Faces are centre-cropped
to a square and resized to 64x64 inside the tfds pipeline. K=1 (no classes),
so there is no classifier stage: the run ends with sample grids and a
synthetic data set. CelebA is large (about 200k images): it needs tfds'
download (online) or an image folder imported with --config.stages=prepare
under another name, e.g. --config.data.name=celeb_a_folder.
"""

from gansynth import config_schema


def get_config(variant: str = ""):
  config = config_schema.default_config()
  config.stages = "train_gan,synthesize"
  config.data.name = "celeb_a"
  config.data.test_split = "test"
  config.data.image_size = 64
  config.data.channels = 3
  config.data.num_classes = 1
  config.gan.conditioning = "unconditional"
  config.gan.architecture = "dcgan"
  config.gan.loss = "bce"
  config.gan.batch_size = 128
  config.gan.train_steps = 20000
  config.gan.checkpoint_every = 1000
  config.gan.sample_every = 1000
  config.gan.grid_per_class = 64
  config.synthesis.num_per_class = 10000
  config.classifier.sources = "real"  # unused: no classify stage
  return config_schema.apply_variant(config, variant)
