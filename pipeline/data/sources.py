"""The `data:` section of a recipe and the loader that dispatches on its source."""
import dataclasses
import os
from typing import Literal, Optional

import numpy as np

from pipeline.config import at_least, between
from pipeline.data.dataset import (Data, check_every_class_trains, check_labels, class_count,
                                    normalization, split)
from pipeline.errors import DataError


@dataclasses.dataclass
class DataConfig:
    """Where the data comes from and how it is split.

    source: `digits` (scikit-learn's 8x8 handwritten digits, embedded, no
      download), `npz` (arrays `x`, `y` or `x_train`, `y_train`, `x_test`,
      `y_test`), `image_folder` (one subfolder per class), `text` (UTF-8
      bytes for language models; without a path, Python's pydoc_data topics)
      or `tfrecord` (shards of tf.train.Example with a declared `features` spec).
      Image folders and TFRecords stream through tf.data; the others are
      loaded into memory.
    """
    source: Literal["digits", "npz", "image_folder", "text", "tfrecord"] = "digits"
    path: Optional[str] = None
    # How many classes (labels are 0 .. num_classes-1); default: the largest
    # label + 1, or the number of class subfolders. Every class needs training examples.
    num_classes: Optional[int] = dataclasses.field(default=None, metadata=at_least(2))
    # Names of the classes, in label order (labels.txt and the Android
    # metadata); default: the subfolder names of an image folder, else "0", "1", ...
    class_names: Optional[list[str]] = None
    # Image folders: every image is resized to this [height, width].
    image_size: Optional[list[int]] = None
    # Image folders: 1 reads grayscale, 3 RGB.
    channels: Literal[1, 3] = 3
    # Image folders: pixels are divided by this. None (auto): 255, mapping 8-bit
    # pixels to [0, 1], unless the model's first layer rescales its input itself
    # (keras.applications' include_preprocessing): then 1 (pipeline/intake.py).
    scale: Optional[float] = dataclasses.field(default=None,
                                               metadata=between(0, None, low_open=True))
    validation_fraction: float = dataclasses.field(default=0.15, metadata=between(0, 1, True, True))
    # Ignored when the npz file brings its own test split.
    test_fraction: float = dataclasses.field(default=0.2, metadata=between(0, 1, True, True))
    # How many training examples calibrate full-int8 quantization.
    representative_samples: int = dataclasses.field(default=200, metadata=at_least(1))
    # TFRecord: {feature: {dtype: float32|int64|string, shape: [...]}}, and
    # which feature is the input and which the label.
    features: Optional[dict] = None
    x_feature: Optional[str] = None
    y_feature: Optional[str] = None
    # TFRecord: records shuffled through a buffer of this many examples
    # (image folders shuffle their whole path list).
    shuffle_buffer: int = dataclasses.field(default=10_000, metadata=at_least(1))
    # Text: bytes per window, and how much of the text to use (None: all).
    sequence_length: int = dataclasses.field(default=64, metadata=at_least(2))
    max_bytes: Optional[int] = dataclasses.field(default=None, metadata=at_least(100))

    def validate(self):
        if self.source not in ("digits", "text") and not self.path:
            raise ValueError(f"path: required for source {self.source!r}")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"validation_fraction + test_fraction = "
                f"{self.validation_fraction + self.test_fraction}; it must be below 1")
        if self.class_names is not None:
            if len(self.class_names) < 2 or any(
                    not isinstance(n, str) or not n.strip() or "\n" in n for n in self.class_names):
                raise ValueError(f"class_names: got {self.class_names!r}; expected a list of at "
                                 "least two non-empty one-line names, one per class in label order")
            if len(set(self.class_names)) != len(self.class_names):
                raise ValueError(f"class_names: {self.class_names!r} names a class twice")
            if self.num_classes is not None and self.num_classes != len(self.class_names):
                raise ValueError(f"class_names: {len(self.class_names)} names but num_classes is "
                                 f"{self.num_classes}; give one name per class")
            if self.source == "text":
                raise ValueError("class_names: a text source predicts bytes; it has no classes "
                                 "to name")
        if self.image_size is not None and (
                len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"image_size: got {self.image_size}; expected [height, width] >= 1")


def load(cfg, seed):
    """Loads the data named by a `DataConfig` and splits it with `seed`.

    Raises:
      DataError: for a missing or unreadable source, labels outside
        0 .. num_classes-1, a class without training examples, or
        class_names whose count differs from the classes found.
    """
    data = _load(cfg, seed)
    if cfg.class_names is not None:
        if len(cfg.class_names) != data.num_classes:
            raise DataError(f"data.class_names: {len(cfg.class_names)} names for "
                            f"{data.num_classes} classes; give one name per class, in label order")
        data.class_names = list(cfg.class_names)
    check_every_class_trains(data)
    return data


def check_paths(cfg):
    """The checks that need no TensorFlow and no reading: run before TensorFlow is imported."""
    if cfg.path and cfg.source != "tfrecord" and not os.path.exists(cfg.path):
        raise DataError(f"data.path: {cfg.path!r} does not exist")
    if cfg.source == "digits" and cfg.num_classes not in (None, 10):
        raise DataError(f"data.num_classes: got {cfg.num_classes}; the digits have 10 classes")


def _load(cfg, seed):
    check_paths(cfg)
    if cfg.source == "digits":
        return _digits(cfg, seed)
    if cfg.source == "text" and not cfg.path:
        from pipeline.data.text import load_text
        return load_text(cfg, seed)
    if cfg.source == "tfrecord":
        from pipeline.data.tfrecord import load_tfrecord
        return load_tfrecord(cfg, seed)
    if cfg.source == "npz":
        return _npz(cfg, seed)
    if cfg.source == "text":
        from pipeline.data.text import load_text
        return load_text(cfg, seed)
    from pipeline.data.image_folder import load_image_folder
    return load_image_folder(cfg, seed)


def _digits(cfg, seed):
    from sklearn.datasets import load_digits
    digits = load_digits()
    # Pixels are 0..16; the model sees [0, 1] images with one channel.
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    parts = split(x, y, cfg.validation_fraction, cfg.test_fraction, seed)
    return Data.from_arrays(*parts, class_names=[str(c) for c in range(10)],
                description="scikit-learn digits (8x8)",
                preprocessing="8x8 grayscale, pixel values 0..16 divided by 16, shape (8, 8, 1)",
                normalization=normalization(0.0, 16.0, 0.0, 16.0, "image", "GRAYSCALE"))


def _npz(cfg, seed):
    try:
        arrays = np.load(cfg.path, allow_pickle=False)
        names = set(arrays.files)
    except Exception as e:  # numpy raises several types for a bad file
        raise DataError(f"data.path: cannot read {cfg.path!r} as .npz: {e}") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= names:
        x_rest, y_rest = arrays["x_train"], arrays["y_train"]
        x_test, y_test = arrays["x_test"], arrays["y_test"]
    elif {"x", "y"} <= names:
        x_rest, y_rest, x_test, y_test = arrays["x"], arrays["y"], None, None
    else:
        raise DataError(f"data.path: {cfg.path!r} holds arrays {sorted(names)}; expected "
                        "'x' and 'y', or 'x_train', 'y_train', 'x_test' and 'y_test'")
    labels = np.concatenate([np.ravel(y_rest)] + ([] if y_test is None else [np.ravel(y_test)]))
    if labels.size == 0:
        raise DataError(f"data.path: {cfg.path!r} holds no examples")
    num_classes = class_count(labels, cfg.num_classes)
    y_rest = check_labels(x_rest, y_rest, num_classes, cfg.path)
    x_rest = x_rest.astype(np.float32)
    if y_test is None:
        parts = split(x_rest, y_rest, cfg.validation_fraction, cfg.test_fraction, seed)
    else:
        y_test = check_labels(x_test, y_test, num_classes, cfg.path + " (test split)")
        if x_test.shape[1:] != x_rest.shape[1:]:
            raise DataError(f"data.path: x_test examples have shape {x_test.shape[1:]} but "
                            f"x_train examples {x_rest.shape[1:]}; they must match")
        x_train, x_val, y_train, y_val = _train_val(x_rest, y_rest, cfg.validation_fraction, seed)
        parts = (x_train, y_train, x_val, y_val, x_test.astype(np.float32), y_test)
    return Data.from_arrays(*parts, class_names=[str(c) for c in range(num_classes)],
                description=f"npz {os.path.basename(cfg.path)}",
                preprocessing="the npz's x as stored, cast to float32",
                # No scaling: the range is what the file's training inputs span.
                normalization=normalization(0.0, 1.0, float(np.min(parts[0])),
                                            float(np.max(parts[0])), "features"))


def _train_val(x, y, val_fraction, seed):
    from sklearn.model_selection import train_test_split
    return train_test_split(x, y, test_size=val_fraction, random_state=seed)
