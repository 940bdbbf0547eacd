"""The `Data` every stage and the exporter receive."""
import dataclasses

import numpy as np

from pipeline.data.split import ArraySplit
from pipeline.errors import DataError


@dataclasses.dataclass
class Data:
    """Train/validation/test splits of a classification dataset.

    Each split is an `ArraySplit` (numpy arrays in memory) or a `StreamSplit`
    (decoded through tf.data as it is read); see pipeline/data/split.py.
    Inputs are float32 in the range the model is trained on (int32 token ids
    for text); labels are int class indices in [0, num_classes).
    """
    train: object
    val: object
    test: object
    class_names: list
    description: str = ""
    # "classification" (one label per example) or "language_model" (a target
    # per position: y has the shape of x).
    task: str = "classification"
    # How raw inputs become x: what an app must do before feeding the model.
    preprocessing: str = ""
    # The same as figures, for the Android metadata: {mean, std, min, max,
    # kind: image|features, color_space} with x = (raw - mean) / std and raw
    # in [min, max] (None where unknown); None for token inputs.
    normalization: dict = None
    # The split a run is judged on (benchmark.split): Keras figures are
    # measured on it too, so that they compare with the files'.
    judged_on: str = "test"

    @property
    def judged(self):
        """The split the run is judged on: `test`, or `val` (see judged_on)."""
        return self.val if self.judged_on == "val" else self.test

    @classmethod
    def from_arrays(cls, x_train, y_train, x_val, y_val, x_test, y_test, **kwargs):
        return cls(ArraySplit(x_train, y_train), ArraySplit(x_val, y_val),
                   ArraySplit(x_test, y_test), **kwargs)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def input_shape(self):
        """The shape of one example, without the batch dimension."""
        return self.train.example_shape

    @property
    def streamed(self):
        return self.train.streamed

    def representative(self, count, seed):
        """`count` training inputs (fewer if the split is smaller) for int8 calibration.

        Drawn from the training split only: calibrating on test data would leak it.
        """
        return self.train.sample(count, seed)[0]

    def summary(self):
        how = ", streamed through tf.data" if self.streamed else ""
        return (f"{self.description}: {len(self.train)} train / {len(self.val)} val / "
                f"{len(self.test)} test examples of shape {self.input_shape}, "
                f"{self.num_classes} classes{how}")


def normalization(mean, std, low, high, kind, color_space=None):
    """How an app turns raw values into the model's x: x = (raw - mean) / std,
    raw within [low, high]; kind "image" or "features" (Data.normalization)."""
    return {"mean": [float(mean)], "std": [float(std)], "min": low, "max": high, "kind": kind,
            "color_space": color_space}


def check_labels(x, y, num_classes, where):
    """Raises DataError unless x and y are the same length and y holds class indices."""
    if len(x) != len(y):
        raise DataError(f"{where}: x has {len(x)} examples but y has {len(y)}; they must match")
    if len(x) == 0:
        raise DataError(f"{where}: no examples")
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{where}: labels have dtype {y.dtype}; expected integer class indices")
    if y.ndim != 1:
        raise DataError(f"{where}: labels have shape {y.shape}; expected one class index per example")
    outside = np.unique(y[(y < 0) | (y >= num_classes)])
    if outside.size:
        raise DataError(f"{where}: label(s) {_listed(outside)} lie outside the {num_classes} "
                        f"classes 0 .. {num_classes - 1}; labels must be class indices "
                        "0 .. num_classes-1 (data.num_classes declares how many)")
    return y.astype(np.int64)


def class_count(labels, declared):
    """How many classes: `declared` (data.num_classes) or the largest label + 1."""
    return int(declared) if declared else int(np.max(labels)) + 1


def check_every_class_trains(data, where="data"):
    """Raises DataError when a class has no example in the training split.

    A class with no training example cannot be learnt, and with labels such as
    20..29 it shows that the labels are not 0 .. num_classes-1.
    """
    labels = data.train.labels
    if labels is None or data.task != "classification":
        return
    counts = np.bincount(np.asarray(labels, np.int64), minlength=data.num_classes)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        present = np.flatnonzero(counts)
        raise DataError(
            f"{where}: class(es) {_listed(empty)} of 0 .. {data.num_classes - 1} have no example "
            f"in the training split (labels present: {_listed(present)}); labels must be "
            "0 .. num_classes-1 with every class in the training data (data.num_classes "
            "declares how many; a rare class needs more examples or a smaller test/validation "
            "fraction)")


def _listed(values, shown=8):
    values = [int(v) for v in values]
    if len(values) <= shown:
        return ", ".join(map(str, values))
    return ", ".join(map(str, values[:shown])) + f", ... ({len(values)} in all)"


def split(x, y, val_fraction, test_fraction, seed):
    """Seeded, stratified train/val/test split (returns six arrays)."""
    from sklearn.model_selection import train_test_split

    def stratify(labels):
        # Stratifying needs two examples per class; tiny sets fall back to random.
        return labels if np.bincount(labels).min() >= 2 else None

    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=stratify(y))
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
        stratify=stratify(y_rest))
    return x_train, y_train, x_val, y_val, x_test, y_test
