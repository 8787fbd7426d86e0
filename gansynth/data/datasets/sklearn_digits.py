"""scikit-learn's bundled handwritten digits as a tfds data set (no download).

1,797 real 8x8 grey digits (UCI), 16 grey levels scaled to 0..255. The first
1,437 images (80%) are `train`, the last 360 are `test`. Importing this module
registers the builder, so ``tfds.builder("sklearn_digits")`` finds it.
"""

import numpy as np
import tensorflow_datasets as tfds

NUM_TRAIN = 1437


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's `load_digits()`: 8x8x1 uint8 images, 10 classes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: 80/20 train/test split in order."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        homepage="https://archive.ics.uci.edu/dataset/80",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with scikit-learn.
    return {"train": self._generate_examples(0, NUM_TRAIN),
            "test": self._generate_examples(NUM_TRAIN, None)}

  def _generate_examples(self, start, stop):
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    for i in range(len(images))[start:stop]:
      yield i, {"image": images[i][..., None], "label": int(digits.target[i])}
