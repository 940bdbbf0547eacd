"""TFRecord shards of tf.train.Example records, streamed through tf.data with a declared spec.

    data:
      source: tfrecord
      path: "data/train-*.tfrecord"          # a file or a glob of shards
      features:                              # every feature the records hold
        image: {dtype: float32, shape: [8, 8, 1]}
        label: {dtype: int64, shape: []}
      x_feature: image
      y_feature: label

A record holding a feature the spec does not declare is an error naming it,
so a changed writer cannot silently feed the wrong inputs.
"""
import glob

import numpy as np

from pipeline.data.dataset import Data, check_labels, class_count, normalization, split
from pipeline.data.split import StreamSplit
from pipeline.errors import DataError

DTYPES = ("float32", "int64", "string")


def load_tfrecord(cfg, seed):
    """Checks every record against the feature spec and splits them with `seed`.

    Records are streamed from the shards when read; only their labels are held.
    """
    from pipeline.backend import tf
    files = sorted(glob.glob(cfg.path))
    if not files:
        raise DataError(f"data.path: no TFRecord file matches {cfg.path!r}")
    spec = _spec(cfg, tf)
    try:
        first = next(iter(tf.data.TFRecordDataset(files[:1]).take(1)))
        example = tf.train.Example.FromString(first.numpy())
    except (StopIteration, tf.errors.OpError, Exception) as e:  # DecodeError has no common base
        raise DataError(f"data.path: {files[0]!r} is not a TFRecord of tf.train.Example: "
                        f"{type(e).__name__}") from None
    unknown = sorted(set(example.features.feature) - set(spec))
    if unknown:
        raise DataError(f"data.features: the records hold feature(s) {unknown} that the spec "
                        f"does not declare; declared: {sorted(spec)}")
    def parse(record):
        return tf.io.parse_single_example(record, spec)

    # One streaming pass checks every record against the spec and keeps only
    # the labels (for the stratified split); inputs are parsed again when read.
    labels_only = tf.data.TFRecordDataset(files).map(
        lambda record: tf.reshape(parse(record)[cfg.y_feature], [-1])[0],
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    try:
        labels = np.fromiter(labels_only.as_numpy_iterator(), dtype=(
            np.int64 if cfg.features[cfg.y_feature]["dtype"] == "int64" else np.float64))
    except tf.errors.OpError as e:
        raise DataError(f"data.features: the records do not fit the spec: "
                        f"{' '.join(str(e.message).split())[:200]}") from None
    if labels.size == 0:
        raise DataError(f"data.path: {cfg.path!r} holds no records")
    num_classes = class_count(labels, cfg.num_classes)
    y = check_labels(labels, labels, num_classes, cfg.path)
    shape = cfg.features[cfg.x_feature].get("shape", [])

    def decode_record(record):
        example = parse(record)
        return (tf.cast(example[cfg.x_feature], tf.float32),
                tf.cast(tf.reshape(example[cfg.y_feature], [-1])[0], tf.int64))

    parts = split(np.arange(len(y)), y, cfg.validation_fraction, cfg.test_fraction, seed)
    train, val, test = (
        StreamSplit(indices, shape, records=lambda: tf.data.TFRecordDataset(files).enumerate(),
                    decode_record=decode_record, shuffle_buffer=cfg.shuffle_buffer, labels=part_y)
        for indices, part_y in zip(parts[0::2], parts[1::2]))
    return Data(train, val, test, class_names=[str(c) for c in range(num_classes)],
                description=f"TFRecord {cfg.path} ({len(files)} shard(s))",
                preprocessing=f"feature {cfg.x_feature!r} as stored, cast to float32",
                normalization=normalization(0.0, 1.0, None, None, "features"))


def _spec(cfg, tf):
    if not cfg.features or not cfg.x_feature or not cfg.y_feature:
        raise DataError("data.features, data.x_feature and data.y_feature: required for "
                        "source 'tfrecord' (the spec of every feature in the records)")
    spec = {}
    for name, entry in cfg.features.items():
        if not isinstance(entry, dict) or entry.get("dtype") not in DTYPES:
            raise DataError(f"data.features.{name}: got {entry!r}; expected "
                            f"{{dtype: one of {', '.join(DTYPES)}, shape: [...]}}")
        spec[name] = tf.io.FixedLenFeature(entry.get("shape", []), getattr(tf, entry["dtype"]))
    for key in ("x_feature", "y_feature"):
        if getattr(cfg, key) not in spec:
            raise DataError(f"data.{key}: {getattr(cfg, key)!r} is not a declared feature; "
                            f"declared: {sorted(spec)}")
    for key in ("x_feature", "y_feature"):
        if cfg.features[getattr(cfg, key)]["dtype"] == "string":
            raise DataError(f"data.{key}: feature {getattr(cfg, key)!r} has dtype string; "
                            "inputs and labels must be float32 or int64")
    return spec
