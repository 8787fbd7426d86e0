"""The config schema: every field and its default.

Each file in configs/ starts from `default_config()` and changes what it
needs. Every field is part of the schema: an override of a key that is not
here (``--config.gan.stpes=5``) or of the wrong type fails at start-up, and
`validate` rejects values no stage can use, before any work starts.
"""

import ml_collections


def default_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Comma-separated stages, run in this order: train_gan, synthesize, classify.
  config.stages = "train_gan,synthesize,classify"

  config.data = ml_collections.ConfigDict()
  config.data.name = "sklearn_digits"  # a tfds name
  config.data.data_dir = ""  # tfds data_dir; "" means tfds' default
  config.data.train_split = "train"  # tfds slicing works: "train[:55000]"
  config.data.test_split = "test"
  config.data.image_size = 8  # square; images are resized to it
  config.data.channels = 1
  config.data.num_classes = 10
  config.data.download = True  # let tfds download a missing data set
  config.data.source_dir = ""  # original files to import (stage "prepare")

  config.gan = ml_collections.ConfigDict()
  # "per_class": K = num_classes GANs, one per class; "conditional": one
  # class-conditional GAN (conditional BN in G, projection D) trained on all
  # classes, batch_size balanced over them; "unconditional": one GAN, no labels.
  config.gan.conditioning = "per_class"
  config.gan.architecture = "study"  # "study" or "dcgan"
  config.gan.loss = "bce"  # "bce" (non-saturating), "l1" (|X1 - X|), "hinge"
  config.gan.latent_dim = 100
  config.gan.g_width = 64
  config.gan.d_width = 64
  config.gan.learning_rate = 2e-4
  config.gan.beta1 = 0.5
  config.gan.beta2 = 0.999
  config.gan.batch_size = 64  # per GAN
  # G's update reuses the fake batch of D's update (one G forward per step,
  # as in PyTorch's DCGAN example); False: fresh noise and a second forward.
  config.gan.reuse_fake = True
  config.gan.train_steps = 1000
  # Small-data techniques (all off by default; docs/gan_quality.md).
  # DiffAugment policies applied to every image D sees: a comma list of
  # "color", "translation", "cutout" ("" off); `augment_strength` scales them.
  config.gan.diffaugment = ""
  config.gan.augment_strength = 1.0
  # EMA of G's weights (0: off), updated from step `ema_start` on; synthesis
  # and sample grids use it (synthesis.use_ema).
  config.gan.ema_decay = 0.0
  config.gan.ema_start = 0
  config.gan.spectral_norm = False  # on every D layer
  config.gan.r1_gamma = 0.0  # R1 penalty on real images, gamma / 2 * |grad|^2
  config.gan.mbstd = False  # minibatch standard deviation at the end of D
  config.gan.n_critic = 1  # D updates per G update
  # How the K GANs are mapped ("auto": plain jax.vmap off the CPU; "vmap",
  # "unroll", "conv_unroll": gansynth/cpu/gan_axis.py), how convolutions are
  # computed ("auto", "lax", "matmul": gansynth/cpu/matmul_conv.py) and in
  # which dtype ("float32", or "bfloat16" for GPU/TPU; parameters and
  # losses stay float32).
  config.gan.strategy = "auto"
  config.gan.conv = "auto"
  config.gan.dtype = "float32"
  config.gan.log_every = 100
  config.gan.checkpoint_every = 500
  config.gan.sample_every = 500  # 0: only at the end
  config.gan.grid_per_class = 10
  # A GAN whose loss or parameters turn NaN/inf: "stop" the run, or
  # "rollback" that GAN to its last checkpoint with a new seed (others go on).
  config.gan.on_nonfinite = "stop"
  config.gan.max_rollbacks = 3

  # Devices (gansynth/runtime/parallel.py): the GAN axis is sharded over them.
  config.mesh = ml_collections.ConfigDict()
  config.mesh.gan = 0  # devices along the GAN axis; 0: the most dividing K
  # Several hosts (processes) training the GANs together: each runs the same
  # command with distributed=True (stage train_gan only; see parallel.py).
  # jax.distributed.initialize finds a TPU pod slice, SLURM or Open MPI job
  # itself; elsewhere give process 0's "host:port", the number of processes
  # and this process's id.
  config.mesh.distributed = False
  config.mesh.coordinator_address = ""
  config.mesh.num_processes = 0
  config.mesh.process_id = -1

  config.synthesis = ml_collections.ConfigDict()
  config.synthesis.num_per_class = 7300  # the study's number per digit
  config.synthesis.batch_size = 1000
  config.synthesis.use_ema = True  # the EMA generator where there is one
  # Latents per GAN whose batch statistics replace G's BN running averages
  # before synthesis (standing statistics; 0: keep the running averages).
  config.synthesis.standing_stats = 0
  # Below 1: draw num_per_class / keep_fraction images per class and keep
  # those the class's D scores most real (discriminator rejection).
  config.synthesis.keep_fraction = 1.0
  config.synthesis.temperature = 1.0  # the latents' std: z ~ N(0, t^2)
  # Choose the stored GAN step (and EMA or not) by the accuracy on real
  # images of `select_split` of a short classifier trained on each
  # candidate's images (selection.py). The split is carved from the training
  # data, never the test split.
  config.synthesis.select = False
  config.synthesis.select_split = ""  # e.g. "train[50000:55000]"
  config.synthesis.select_per_class = 500
  config.synthesis.select_steps = 500

  config.procedural = ml_collections.ConfigDict()
  config.procedural.num_per_class = 7300  # as many as the study's GAN set
  config.procedural.workers = 0  # render processes; 0: one per core
  # The renderer's ranges (fonts, colours, distractors, noise ...): the SVHN
  # preset; configs of grey digits use render_config("mnist").
  config.procedural.render = render_config("svhn")

  # SimGAN refiner (gansynth/sim/refiner.py) of the procedural images: the
  # source `refined`, made by the stage `refine` (run after synthesize when
  # `refined` is among classifier.sources).
  config.refiner = ml_collections.ConfigDict()
  config.refiner.per_class = False  # True: K refiners, one per class
  # True: the one refiner's patch D also sees each image's label (projection)
  config.refiner.conditional = False
  config.refiner.width = 64  # R's feature maps (the paper's 64)
  config.refiner.num_blocks = 4  # R's ResNet blocks (the paper's 4)
  config.refiner.d_width = 64  # D's widths: 1.5x, 1x, 0.5x, 0.5x this
  config.refiner.reg_lambda = 10.0  # weight of L1(refined, rendered), R's loss
  # > 1: that L1 is taken between reg_pool x reg_pool block averages (SimGAN's
  # feature map psi), which leaves the stroke inside each block free.
  config.refiner.reg_pool = 1
  config.refiner.learning_rate = 1e-4  # Adam (the paper: SGD 1e-3)
  config.refiner.beta1 = 0.5
  config.refiner.batch_size = 64
  config.refiner.history_size = 640  # refined images kept for D's fake batch
  config.refiner.r_updates = 2  # R updates per D update (the paper's K_g = 2)
  config.refiner.r_pretrain_steps = 200  # R on the L1 term alone
  config.refiner.d_pretrain_steps = 100  # then D alone
  config.refiner.train_steps = 1000  # then alternating (adversarial) steps
  # > 0: refine with a moving average of R's weights (this decay per step),
  # which starts at step ema_start (counting all three phases).
  config.refiner.ema_decay = 0.0
  config.refiner.ema_start = 0
  # > 0: R's and D's learning rates fall linearly to 0 over the last
  # decay_steps adversarial steps (CycleGAN's schedule).
  config.refiner.decay_steps = 0
  config.refiner.log_every = 100
  config.refiner.checkpoint_every = 500
  config.refiner.grid_per_class = 5  # rendered | refined pairs per class

  config.classifier = ml_collections.ConfigDict()
  config.classifier.sources = "real,gan"  # comma-separated
  config.classifier.width = 32
  config.classifier.learning_rate = 1e-3
  config.classifier.batch_size = 128
  config.classifier.train_steps = 2000
  # epochs > 0: train every source for as many steps as this many passes
  # over the real training set take (train_steps is then ignored); steps,
  # schedule, warm-up and augmentation are the same for every source.
  config.classifier.epochs = 0
  config.classifier.schedule = "constant"  # or "cosine" (with warm-up)
  config.classifier.warmup_fraction = 0.05
  config.classifier.shift = 0  # random shifts of up to this many pixels
  config.classifier.flip = False  # random left-right mirroring
  # Cross-entropy against (1 - e) one-hot + e / num_classes (0: off).
  config.classifier.label_smoothing = 0.0
  config.classifier.seed = 0
  config.classifier.eval_batch_size = 1000

  config.evaluation = ml_collections.ConfigDict()
  config.evaluation.seeds = 3  # classifier seeds 0..seeds-1 per source
  # GAN images added to real ones, as a fraction of the real training set size.
  config.evaluation.mix_ratios = "0.5,1.0"
  # Stratified real subsets (low-data sweep), each alone and with every mix.
  config.evaluation.real_fractions = "0.01,0.1,1.0"
  config.evaluation.feature_samples = 2000  # per set, for distances
  config.evaluation.knn_k = 3  # precision/recall neighbourhood size
  return config


# The digit renderer's settings live here, so that loading a config does not
# import the renderer (PIL, fonts). Fonts whose code points for "0".."9" are not digit shapes (symbol, math
# extension and fallback fonts); matched against the file name.
NON_DIGIT_FONTS = ("*cmex*", "*cmsy*", "*cmmi*", "*STIXNonUni*", "*STIXSiz*",
                   "*LastResort*", "*Symbol*", "*Dingbat*", "*Emoji*",
                   "*Webdings*", "*Wingding*", "*OpenSymbol*", "*Math*")
# svhn: colour house numbers; mnist: white strokes on black, 20x20 box in
# 28x28; digits: scikit-learn's 8x8 digits (ink fills the image).
RENDER_PRESETS = ("svhn", "mnist", "digits")



def render_config(preset: str = "svhn") -> ml_collections.ConfigDict:
  """`config.procedural.render`: every randomisation range of the digit
  renderer (procedural.py) for a preset; ``(lo, hi)`` are uniform."""
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.image_shape = (32, 32, 3)  # The preset's usual shape, for callers.
  # Font files, directories (searched recursively) or glob patterns; "system"
  # adds /usr/share/fonts, ~/.fonts, ... Empty: only the fonts matplotlib
  # ships, so every machine renders the same images (font_record says which).
  c.fonts = ()
  c.font_exclude = NON_DIGIT_FONTS
  c.supersample = 2
  # Digit ink height as a fraction of the image height, and width scaling.
  c.digit_height = (0.5, 0.85)
  c.aspect = (0.75, 1.25)
  # Max offset of the digit centre, as fractions of image (width, height).
  c.position_jitter = (0.08, 0.08)
  c.rotation = 8.0  # Max degrees either way.
  c.shear = 0.2  # Max horizontal shear (italics) either way.
  c.stroke_width = (0.0, 0.06)  # Extra stroke, fraction of digit height.
  # MNIST-style normalisation: fit the ink into a square of fit_box times
  # the image side (MNIST: 20 of 28 pixels) and move its centre of mass to
  # the image centre (0: off).
  c.fit_box = 0.0
  # Elastic warp of the strokes, in output pixels (0: off); handwriting-like.
  c.elastic_alpha = 0.0

  c.colors = ml_collections.ConfigDict()
  c.colors.fixed = False  # True: always foreground on background below.
  c.colors.foreground = (255, 255, 255)
  c.colors.background = (0, 0, 0)
  c.colors.min_contrast = 0.25  # Min luminance difference, fraction of 255.
  c.colors.gray_prob = 0.3  # Probability of grey digit and background.
  c.colors.max_saturation = 0.8  # HSV; drawn as max * U^2, mostly muted.
  c.colors.gradient_prob = 0.4  # Probability of a linear background gradient.
  c.colors.gradient_range = 80  # Max per-channel change across a gradient.
  c.colors.digit_gradient_prob = 0.15
  c.colors.shadow_prob = 0.15  # Drop shadow / embossed edge.

  # Neighbouring digits of the house number, partly visible at each side.
  c.neighbours = ml_collections.ConfigDict()
  c.neighbours.prob = 0.7  # Per side.
  c.neighbours.gap = (-0.05, 0.4)  # Gap to the centre digit / digit height.

  c.distractors = ml_collections.ConfigDict()
  c.distractors.count = (0, 3)  # Inclusive range of shapes per image.
  c.distractors.width = (0.02, 0.1)  # Line width, fraction of image height.

  c.noise_sigma = (0.0, 8.0)  # Gaussian pixel noise, 0..255 units.
  c.blur_radius = (0.0, 0.9)  # Gaussian blur in output pixels.
  c.jpeg_prob = 0.5
  c.jpeg_quality = (30, 95)

  if preset == "svhn":
    return c
  if preset not in RENDER_PRESETS:
    raise ValueError(f"unknown preset {preset!r}: use one of {RENDER_PRESETS}")
  c.image_shape = (28, 28, 1)
  c.digit_height = (0.7, 0.7)  # Rescaled to fit_box anyway.
  c.aspect = (0.7, 1.1)
  c.position_jitter = (0.0, 0.0)
  c.rotation = 15.0
  c.shear = 0.3
  c.stroke_width = (0.0, 0.04)
  c.fit_box = 20 / 28
  c.elastic_alpha = 1.5
  c.colors.fixed = True
  c.colors.gradient_prob = 0.0
  c.colors.digit_gradient_prob = 0.0
  c.colors.shadow_prob = 0.0
  c.neighbours.prob = 0.0
  c.distractors.count = (0, 0)
  c.noise_sigma = (0.0, 0.0)
  c.blur_radius = (0.0, 0.0)
  c.jpeg_prob = 0.0
  if preset == "digits":
    # scikit-learn's 8x8 digits: 32x32 bitmaps counted in 4x4 blocks, ink
    # filling the full height. Ranges fitted to the real set's measured ink
    # height (8 px), width (5-6 px), ink mass (~19 of 64 px) and slant
    # (shear -0.16..0.25, 5-95%): the mnist preset's thin strokes, 6 px box
    # and elastic warp gave 6 px high, faint blobs. Rotation and elastic warp
    # were chosen by the CAS on a validation slice (docs/refiner.md).
    c.image_shape = (8, 8, 1)
    c.supersample = 4
    c.fit_box = 1.0
    c.aspect = (0.7, 1.05)
    c.rotation = 12.0
    c.shear = 0.2
    c.stroke_width = (0.02, 0.08)
    c.elastic_alpha = 0.8
  return c


class ConfigError(ValueError):
  """A config value that no stage can use."""


STAGES = ("prepare", "train_gan", "synthesize", "refine", "classify",
          "evaluate")
SOURCES = ("real", "gan", "procedural", "refined")


def split_list(text: str) -> list[str]:
  """"a, b" -> ["a", "b"]: lists are comma-separated strings in configs."""
  return [s.strip() for s in text.split(",") if s.strip()]


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad field and what it should be."""
  from gansynth import cpu, models  # pylint: disable=g-import-not-at-top
  from gansynth.gan import augment  # pylint: disable=g-import-not-at-top
  from gansynth.gan import losses  # pylint: disable=g-import-not-at-top

  def need(ok: bool, field: str, what: str):
    if not ok:
      value = config
      for part in field.split("."):
        value = value[part]
      raise ConfigError(f"config.{field}={value!r}: {what}")

  def one_of(field, choices):
    value = config
    for part in field.split("."):
      value = value[part]
    need(value in choices, field, f"choose one of {tuple(choices)}")

  stages = split_list(config.stages)
  need(bool(stages) and all(s in STAGES for s in stages), "stages",
       f"a comma-separated list of {STAGES}")
  sources = split_list(config.classifier.sources)
  need(bool(sources) and all(s in SOURCES for s in sources),
       "classifier.sources", f"a comma-separated list of {SOURCES}")
  need(8 <= config.data.image_size <= 256 and config.data.image_size % 4 == 0,
       "data.image_size", "a multiple of 4 from 8 to 256 (e.g. 8, 28, 32, 64)")
  one_of("data.channels", (1, 3))
  need(config.data.num_classes >= 1, "data.num_classes", "at least 1")
  one_of("gan.architecture", models.ARCHITECTURES)
  need(config.gan.loss != "study", "gan.loss",
       "the study's loss is now called 'l1' (|X1 - X| on a sigmoid output)")
  one_of("gan.loss", losses.LOSSES)
  one_of("gan.conditioning", models.CONDITIONING)
  one_of("gan.on_nonfinite", ("stop", "rollback"))
  need(config.gan.max_rollbacks >= 0, "gan.max_rollbacks", "0 or more")
  try:
    augment.parse(config.gan.diffaugment)
    policies_ok = True
  except ValueError:
    policies_ok = False
  need(policies_ok, "gan.diffaugment",
       f"a comma-separated list of {augment.POLICIES} (or empty)")
  need(config.gan.augment_strength >= 0, "gan.augment_strength", "0 or more")
  need(0 <= config.gan.ema_decay < 1, "gan.ema_decay", "must be in [0, 1)")
  need(config.gan.ema_start >= 0, "gan.ema_start", "0 or more")
  need(config.gan.r1_gamma >= 0, "gan.r1_gamma", "0 or more")
  need(config.gan.n_critic >= 1, "gan.n_critic", "at least 1")
  one_of("classifier.schedule", ("constant", "cosine"))
  need(config.classifier.epochs >= 0, "classifier.epochs",
       "0 (use train_steps) or more")
  need(0 <= config.classifier.warmup_fraction < 1,
       "classifier.warmup_fraction", "must be in [0, 1)")
  need(config.classifier.shift >= 0, "classifier.shift", "0 or more pixels")
  need(0 <= config.classifier.label_smoothing < 1,
       "classifier.label_smoothing", "must be in [0, 1)")
  if config.synthesis.select:
    split = config.synthesis.select_split
    need(bool(split), "synthesis.select_split",
         "give a validation slice of the training data, e.g. "
         "'train[50000:55000]' (with the GANs trained on 'train[:50000]')")
    need(split != config.data.test_split and
         split.split("[")[0].strip() != "test", "synthesis.select_split",
         "must not be the test split: choose checkpoints on a validation "
         "slice carved from the training data")
    need(config.synthesis.select_per_class > 0 and
         config.synthesis.select_steps > 0, "synthesis.select_steps",
         "select_per_class and select_steps must be positive integers")
  one_of("gan.strategy", cpu.STRATEGIES)
  one_of("gan.conv", cpu.CONVS)
  one_of("gan.dtype", models.DTYPES)
  need(config.mesh.gan >= 0, "mesh.gan", "0 (automatic) or a divisor of K")
  if config.mesh.distributed:
    need(stages == ["train_gan"], "stages",
         "only train_gan runs on several hosts (mesh.distributed=True): run "
         "--config.stages=train_gan on every host, then the other stages on "
         "one host without --config.mesh.distributed")
  explicit = (config.mesh.coordinator_address, config.mesh.num_processes > 0,
              config.mesh.process_id >= 0)
  need(all(explicit) or not any(explicit), "mesh.coordinator_address",
       "give mesh.coordinator_address, mesh.num_processes and "
       "mesh.process_id together (or none, to let JAX find the cluster)")
  need(0 < config.synthesis.keep_fraction <= 1, "synthesis.keep_fraction",
       "must be in (0, 1]")
  need(config.synthesis.temperature > 0, "synthesis.temperature",
       "must be positive (1: the latents G was trained on)")
  need(config.synthesis.standing_stats >= 0, "synthesis.standing_stats",
       "must be 0 (off) or a number of latents per GAN")
  for field in ("gan.latent_dim", "gan.g_width", "gan.d_width",
                "gan.batch_size", "gan.train_steps", "gan.log_every",
                "gan.checkpoint_every", "gan.grid_per_class",
                "synthesis.num_per_class", "synthesis.batch_size",
                "classifier.width", "classifier.batch_size",
                "classifier.train_steps", "classifier.eval_batch_size"):
    section, name = field.split(".")
    need(config[section][name] > 0, field, "must be a positive integer")
  need(config.procedural.num_per_class > 0, "procedural.num_per_class",
       "must be a positive integer")
  need(config.procedural.workers >= 0, "procedural.workers", "0 or more")
  need(config.gan.sample_every >= 0, "gan.sample_every", "0 or more")
  for field in ("gan.learning_rate", "classifier.learning_rate"):
    section, name = field.split(".")
    need(config[section][name] > 0, field, "must be positive")
  for field in ("gan.beta1", "gan.beta2"):
    need(0 <= config.gan[field.split(".")[1]] < 1, field, "must be in [0, 1)")
  r = config.refiner
  need(not (r.conditional and r.per_class), "refiner.conditional",
       "is for the one refiner of all classes; a per-class refiner's D "
       "already sees one class (set refiner.per_class=False)")
  need(isinstance(r.per_class, bool), "refiner.per_class",
       "True (one refiner per class) or False (one for all classes)")
  for field in ("width", "num_blocks", "d_width", "batch_size",
                "history_size", "r_updates", "reg_pool", "train_steps",
                "log_every", "checkpoint_every", "grid_per_class"):
    need(r[field] > 0, f"refiner.{field}", "must be a positive integer")
  for field in ("r_pretrain_steps", "d_pretrain_steps"):
    need(r[field] >= 0, f"refiner.{field}", "0 or more")
  need(r.batch_size >= 2, "refiner.batch_size",
       "at least 2 (half of D's fake batch comes from the history)")
  need(r.history_size >= r.batch_size // 2, "refiner.history_size",
       "at least refiner.batch_size // 2 (one push of refined images)")
  need(r.reg_lambda >= 0, "refiner.reg_lambda", "0 or more")
  need(r.learning_rate > 0, "refiner.learning_rate", "must be positive")
  need(0 <= r.beta1 < 1, "refiner.beta1", "must be in [0, 1)")
  need(0 <= r.ema_decay < 1, "refiner.ema_decay",
       "must be in [0, 1) (0: no moving average)")
  need(r.ema_start >= 0, "refiner.ema_start", "0 or more")
  need(0 <= r.decay_steps <= r.train_steps, "refiner.decay_steps",
       "0 (a constant learning rate) up to refiner.train_steps")
  need(not r.per_class
       or config.procedural.num_per_class >= r.batch_size,
       "refiner.batch_size",
       f"with refiner.per_class each class's refiner draws its batches from "
       f"that class's {config.procedural.num_per_class} rendered images "
       "(procedural.num_per_class) alone; lower refiner.batch_size or raise "
       "procedural.num_per_class")
  ev = config.evaluation
  need(ev.seeds >= 1, "evaluation.seeds", "at least 1")

  def floats(field):
    try:
      return [float(v) for v in split_list(ev[field])]
    except ValueError:
      return [-1.0]

  need(all(v > 0 for v in floats("mix_ratios")), "evaluation.mix_ratios",
       "comma-separated positive numbers, e.g. '0.5,1' (or empty)")
  need(all(0 < v <= 1 for v in floats("real_fractions")),
       "evaluation.real_fractions",
       "comma-separated fractions in (0, 1], e.g. '0.01,0.1,1' (or empty)")
  need(ev.knn_k >= 1, "evaluation.knn_k", "at least 1")
  need(ev.feature_samples >= (ev.knn_k + 1) * config.data.num_classes,
       "evaluation.feature_samples",
       "at least (knn_k + 1) * num_classes: every class needs k neighbours")


# Named variants of every config, chosen after a colon on the command line
# (`--config configs/quickstart.py:tiny` calls get_config("tiny")), as
# big_vision's `runlocal`.
VARIANTS = ("", "tiny")


def apply_variant(config: ml_collections.ConfigDict,
                  variant: str) -> ml_collections.ConfigDict:
  """Returns `config` changed as `variant` says ("" keeps it as it is).

  "tiny": the same data and networks shrunk to seconds on a CPU (widths 4,
  a few steps at a constant learning rate, 20 images per class): for tests
  and smoke runs.
  """
  if variant not in VARIANTS:
    raise ConfigError(f"config variant {variant!r} (after ':'): choose one "
                      f"of {VARIANTS}")
  if variant == "tiny":
    config.gan.update(g_width=4, d_width=4, latent_dim=8, batch_size=8,
                      train_steps=6, log_every=2, checkpoint_every=2,
                      sample_every=0, grid_per_class=3)
    config.synthesis.update(num_per_class=20, batch_size=20)
    config.procedural.num_per_class = 20
    config.classifier.update(width=4, batch_size=16, train_steps=10,
                             epochs=0, schedule="constant", shift=0,
                             eval_batch_size=128)
  return config
