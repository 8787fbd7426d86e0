"""Quickstart: ten class GANs on scikit-learn's bundled 8x8 digits, no download.

  python -m gansynth.main --config configs/quickstart.py --workdir /tmp/qs

Trains ten small DCGAN-style GANs (one per digit) on the 1,437 training
digits, synthesizes 200 images per digit, renders 200 procedural digits per
class and refines them (SimGAN, gansynth/refiner.py), trains the study's
classifier on real, GAN, procedural and refined images with the same
settings and tests each on the 360 real test digits. Ends in a few
minutes on 2 CPU cores; see README for results.
Then `--config.stages=evaluate` writes report.md (a smaller sweep than the
default: 2 seeds, 5% and all real labels, with and without GAN images).
"""

from gansynth import config_schema
from gansynth import procedural


def get_config():
  config = config_schema.default_config()
  config.data.name = "sklearn_digits"
  config.data.image_size = 8
  config.data.channels = 1
  config.gan.architecture = "study"
  config.gan.g_width = 16
  config.gan.d_width = 16
  config.gan.batch_size = 32
  config.gan.train_steps = 800
  config.gan.log_every = 100
  config.gan.checkpoint_every = 200
  config.gan.sample_every = 200
  config.synthesis.num_per_class = 200
  config.procedural.num_per_class = 200
  config.procedural.render = procedural.default_config("digits")
  config.classifier.width = 16
  config.classifier.batch_size = 64
  config.classifier.train_steps = 600
  config.classifier.sources = "real,gan,procedural,refined"
  # SimGAN refiner of the rendered digits, sized for 8x8 and a CPU minute.
  config.refiner.width = 32
  config.refiner.d_width = 32
  config.refiner.reg_lambda = 30.0  # the best of a validation sweep (docs)
  config.refiner.r_pretrain_steps = 50
  config.refiner.d_pretrain_steps = 50
  config.refiner.train_steps = 300
  config.refiner.log_every = 50
  config.refiner.checkpoint_every = 200
  config.evaluation.seeds = 2
  config.evaluation.real_fractions = "0.05,1.0"
  config.evaluation.mix_ratios = "1.0"
  return config
