"""The study: ten class GANs on SVHN house numbers, 7,300 images per digit.

  python -m gansynth.main --config configs/svhn.py --workdir /tmp/svhn

Ten GANs of the study's architecture (generator: dense + three upsamplings +
three convolutions; discriminator: three convolutions + three poolings + one
dense) and loss (`l1`; D: |X1 - X| on a sigmoid output, G: 1 - D), one per digit,
on the 73,257 real 32x32 training images of tfds `svhn_cropped`. They
synthesize 7,300 images per digit; the study's classifier (six convolutions,
three poolings, one dense) is trained on real, on procedurally rendered
(73,000) and on GAN images (73,000) and tested on the 26,032 real test
images. The study's table: real 86%, procedural 63%, GAN 77%.

Use --config.gan.loss=bce for the non-saturating loss of DCGAN. Offline,
import train_32x32.mat / test_32x32.mat first (see README, "Real data"):
  --config.data.source_dir=/path/to/mat --config.stages=prepare
"""

from gansynth import config_schema


def get_config(variant: str = ""):
  config = config_schema.default_config()
  config.data.name = "svhn_cropped"
  config.data.image_size = 32
  config.data.channels = 3
  config.gan.architecture = "study"
  config.gan.loss = "l1"
  config.gan.batch_size = 64
  config.gan.train_steps = 10000
  config.gan.checkpoint_every = 1000
  config.gan.sample_every = 1000
  config.synthesis.num_per_class = 7300
  config.procedural.num_per_class = 7300
  config.classifier.sources = "real,gan,procedural"
  config.classifier.train_steps = 5000
  return config_schema.apply_variant(config, variant)
