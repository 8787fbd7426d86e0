"""Quickstart: ten class GANs on scikit-learn's bundled 8x8 digits, no download.

  python -m gansynth.main --config configs/quickstart.py --workdir /tmp/qs

Trains ten small DCGANs (one per digit) on the 1,437 training digits with
the small-data recipe (hinge loss, DiffAugment translation, minibatch std in
D, EMA generator), synthesizes 500 images per digit, renders 500 procedural
digits per class, trains the study's classifier on real, GAN and procedural
images with the same recipe (the steps of 40 epochs over the real digits,
warm-up + cosine, 1-pixel shifts)
and tests each on the 360 real test digits. The recipe was chosen on a
validation slice (train[:1077] / train[1077:]) with
`python -m gansynth.scoring.ablation --config configs/quickstart.py ...`; see
docs/gan_quality.md for the table. Result (idle 2-core Intel Xeon, 3 min 52 s
in all): real 97.2%, GAN 96.7% (no digit below 89%), procedural 68.6%. Procedural
digits use the `digits` preset; the SimGAN refiner (docs/refiner.md) is
off unless `refined` is added to the sources (refined 70.8%).
Then `--config.stages=evaluate` writes report.md (a smaller sweep than the
default: 2 seeds, 5% and all real labels, with and without GAN images).
"""

from gansynth import config_schema


def get_config(variant: str = ""):
  config = config_schema.default_config()
  config.data.name = "sklearn_digits"
  config.data.image_size = 8
  config.data.channels = 1
  config.gan.architecture = "dcgan"
  config.gan.g_width = 32
  config.gan.d_width = 32
  config.gan.batch_size = 32
  config.gan.loss = "hinge"
  config.gan.diffaugment = "translation"
  config.gan.mbstd = True
  config.gan.ema_decay = 0.99
  config.gan.ema_start = 200
  config.gan.train_steps = 1500
  config.gan.log_every = 100
  config.gan.checkpoint_every = 500
  config.gan.sample_every = 500
  config.synthesis.num_per_class = 500
  config.procedural.num_per_class = 500
  config.procedural.render = config_schema.render_config("digits")
  config.classifier.width = 32
  config.classifier.batch_size = 64
  config.classifier.epochs = 40
  config.classifier.schedule = "cosine"
  config.classifier.shift = 1
  config.classifier.sources = "real,gan,procedural"
  # SimGAN refiner of the rendered digits, sized for 8x8 and a CPU minute;
  # add the source with --config.classifier.sources=real,gan,procedural,refined
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
  return config_schema.apply_variant(config, variant)
