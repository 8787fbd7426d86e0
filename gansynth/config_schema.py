"""The config schema: every field and its default.

Each file in configs/ starts from `default_config()` and changes what it
needs. Every field is part of the schema: an override of a key that is not
here (``--config.gan.stpes=5``) or of the wrong type fails at start-up, and
`validate` rejects values no stage can use, before any work starts.
"""

import ml_collections

from gansynth import procedural


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
  config.gan.loss = "bce"  # "bce" (non-saturating) or "study" (|X1 - X|)
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
  # Small-data techniques (all off by default; see the README's ablation).
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
  config.gan.strategy = "auto"  # how the K GANs are mapped: see gan_axis.py
  # How convolutions are computed ("auto", "lax", "matmul": matmul_conv.py)
  # and in which dtype ("float32", or "bfloat16" for GPU/TPU; parameters and
  # losses stay float32).
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

  # Devices (gansynth/parallel.py): the GAN axis is sharded over them.
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

  config.procedural = ml_collections.ConfigDict()
  config.procedural.num_per_class = 7300  # as many as the study's GAN set
  config.procedural.workers = 0  # render processes; 0: one per core
  # The renderer's ranges (fonts, colours, distractors, noise ...): the SVHN
  # preset; configs of grey digits use procedural.default_config("mnist").
  config.procedural.render = procedural.default_config("svhn")

  config.classifier = ml_collections.ConfigDict()
  config.classifier.sources = "real,gan"  # comma-separated
  config.classifier.width = 32
  config.classifier.learning_rate = 1e-3
  config.classifier.batch_size = 128
  config.classifier.train_steps = 2000
  # epochs > 0: train each source for this many passes over its own images
  # (train_steps is then ignored); the schedule, warm-up and augmentation
  # are the same for every source.
  config.classifier.epochs = 0
  config.classifier.schedule = "constant"  # or "cosine" (with warm-up)
  config.classifier.warmup_fraction = 0.05
  config.classifier.shift = 0  # random shifts of up to this many pixels
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
  config.evaluation.inception_path = ""  # TODO: standard FID; unsupported yet
  return config


class ConfigError(ValueError):
  """A config value that no stage can use."""


STAGES = ("prepare", "train_gan", "synthesize", "classify", "evaluate")
SOURCES = ("real", "gan", "procedural")


def split_list(text: str) -> list[str]:
  """"a, b" -> ["a", "b"]: lists are comma-separated strings in configs."""
  return [s.strip() for s in text.split(",") if s.strip()]


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad field and what it should be."""
  from gansynth import augment, gan_axis, gan_train, losses, matmul_conv, models  # pylint: disable=g-import-not-at-top

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
  one_of("gan.loss", losses.LOSSES)
  one_of("gan.conditioning", gan_train.CONDITIONING)
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
  one_of("gan.strategy", gan_axis.STRATEGIES)
  one_of("gan.conv", matmul_conv.CONVS)
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
  need(not ev.inception_path, "evaluation.inception_path",
       "standard (Inception) FID is not implemented yet; leave it empty")
