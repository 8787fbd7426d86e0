"""DCGAN on MNIST (Radford et al.; Adam 2e-4, beta1 0.5, BCE), one per digit.

  python -m gansynth.main --config configs/mnist.py --workdir /tmp/mnist

Ten class DCGANs on MNIST's training digits; then a classifier trained on real,
on GAN, and on procedurally rendered digits, each tested on held-out real
digits. Sample grids per class every `sample_every` steps (samples/) and loss
curves (gan_metrics.jsonl, TensorBoard). Only the training split is needed:
the default holds out train[55000:] as the test set, so it runs offline on an
imported MNIST training split; with the official test split available, add
--config.data.test_split=test.

The GANs use an EMA generator and minibatch std in D; the classifier trains
10 epochs with warm-up + cosine and 2-pixel shifts, the same for every source.
This full-size config is meant for an accelerator (10,000 steps of ten
64-wide DCGANs). `configs/mnist.py:cpu` is the run for 2 CPU cores (widths
32, batch 32, 7,000 steps, about 30 minutes of GAN training on an idle
2-core CPU; classifier 3 epochs). It gave real 99.40%, GAN-only 98.30%,
procedural 81.9% on the held-out train[55000:] (README, docs/gan_quality.md);
with --config.classifier.sources=procedural,refined the SimGAN refiner's
digits (one refiner, a label-conditioned patch D of width 128, lambda 1,
batch 16, 3,000 adversarial steps, refined by the moving average of R's
weights; about 14 minutes of refiner training on 2 cores) scored 92.86%
on seed 0, procedural + 11.0 (seeds 1-3: + 9.4, + 7.6, + 10.0;
docs/refiner.md gives its time and the settings it beat).

Offline import of the original IDX files (see README, "Real data"):
  python -m gansynth.main --config configs/mnist.py --workdir /tmp/mnist \\
      --config.data.source_dir=/path/to/idx --config.stages=prepare
"""

from gansynth import config_schema


def get_config(variant: str = ""):
  config = config_schema.default_config()
  config.data.name = "mnist"
  config.data.image_size = 28
  config.data.channels = 1
  config.data.train_split = "train[:55000]"
  config.data.test_split = "train[55000:]"
  config.gan.architecture = "dcgan"
  config.gan.loss = "bce"
  config.gan.g_width = 64
  config.gan.d_width = 64
  config.gan.batch_size = 64
  config.gan.train_steps = 10000
  config.gan.ema_decay = 0.999
  config.gan.ema_start = 1000
  config.gan.mbstd = True
  config.gan.log_every = 250
  config.gan.checkpoint_every = 1000
  config.gan.sample_every = 1000
  config.synthesis.num_per_class = 5500  # about MNIST's digits per class
  config.procedural.num_per_class = 5500
  config.procedural.render = config_schema.render_config("mnist")
  config.classifier.sources = "real,gan,procedural"
  config.classifier.epochs = 10
  config.classifier.schedule = "cosine"
  config.classifier.shift = 2
  if variant == "cpu":  # 2 CPU cores, ~30 minutes of GAN training
    config.gan.update(g_width=32, d_width=32, batch_size=32,
                      train_steps=7000)
    config.classifier.epochs = 3
    # The SimGAN refiner, if `refined` is added to the sources. D sees the
    # label, so a small lambda can reshape the fonts' digits without moving
    # them to another class (lambda 0.3 did: docs/refiner.md). Batch 16 buys
    # about three times the steps of batch 32; the wider D keeps R from
    # thinning sevens into ones. R's moving average makes the refined set
    # depend less on the step at which the adversarial game stops.
    config.refiner.update(width=32, d_width=128, batch_size=16,
                          history_size=160, r_pretrain_steps=100,
                          d_pretrain_steps=100, train_steps=3000,
                          ema_decay=0.999, learning_rate=5e-4, log_every=50,
                          conditional=True, reg_lambda=1.0)
    return config
  return config_schema.apply_variant(config, variant)
