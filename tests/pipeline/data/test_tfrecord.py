"""TFRecord shards with a declared feature spec."""
import numpy as np
import pytest

from pipeline.data import DataConfig, load
from pipeline.errors import DataError

SPEC = {"image": {"dtype": "float32", "shape": [4, 4, 1]}, "label": {"dtype": "int64", "shape": []}}


def _write(path, n, extra=False, seed=0):
    from pipeline.backend import tf
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(n):
            feature = {
                "image": tf.train.Feature(float_list=tf.train.FloatList(
                    value=rng.random(16).astype(np.float32))),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3])),
            }
            if extra:
                feature["source"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"cam"]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())


def _cfg(path, **kwargs):
    return DataConfig(source="tfrecord", path=str(path), features=kwargs.pop("features", SPEC),
                      x_feature="image", y_feature="label", **kwargs)


def test_shards_are_read_with_the_spec(tmp_path):
    _write(tmp_path / "a.tfrecord", 30)
    _write(tmp_path / "b.tfrecord", 30, seed=1)
    data = load(_cfg(tmp_path / "*.tfrecord"), seed=0)
    assert data.input_shape == (4, 4, 1) and data.num_classes == 3
    assert data.streamed and len(data.train) + len(data.val) + len(data.test) == 60
    written = {}
    for seed, path in ((0, "a"), (1, "b")):
        rng = np.random.default_rng(seed)
        for i in range(30):
            written[rng.random(16).astype(np.float32).tobytes()] = i % 3
    read = {}
    for split in (data.train, data.val, data.test):
        for x, y in split.batches(7).as_numpy_iterator():
            read.update({image.reshape(-1).tobytes(): int(label) for image, label in zip(x, y)})
    assert read == written  # every record once, in one split, with its own label


def test_streamed_training_split_reshuffles_and_samples_its_own_records(tmp_path):
    _write(tmp_path / "a.tfrecord", 40)
    train = load(_cfg(tmp_path / "a.tfrecord"), seed=0).train
    epoch = lambda: [x.tobytes() for b, _ in train.batches(8, shuffle=True, seed=3)
                     .as_numpy_iterator() for x in b]
    dataset = train.batches(8, shuffle=True, seed=3)
    first, second = ([x.tobytes() for b, _ in dataset.as_numpy_iterator() for x in b]
                     for _ in range(2))
    assert sorted(first) == sorted(second) == sorted(epoch()) and first != second
    assert len(first) == len(train)
    x, y = train.sample(5, seed=1)
    assert x.shape == (5, 4, 4, 1) and {e.tobytes() for e in x} <= set(first)


def test_a_feature_missing_from_the_spec(tmp_path):
    _write(tmp_path / "a.tfrecord", 10, extra=True)
    with pytest.raises(DataError, match=r"the records hold feature\(s\) \['source'\] that the spec "
                                        r"does not declare; declared: \['image', 'label'\]"):
        load(_cfg(tmp_path / "a.tfrecord"), seed=0)


def test_records_that_do_not_fit_the_spec(tmp_path):
    _write(tmp_path / "a.tfrecord", 10)
    wrong = {"image": {"dtype": "float32", "shape": [5, 5, 1]}, "label": SPEC["label"]}
    with pytest.raises(DataError, match="the records do not fit the spec"):
        load(_cfg(tmp_path / "a.tfrecord", features=wrong), seed=0)


def test_no_matching_files_and_no_spec(tmp_path):
    with pytest.raises(DataError, match="no TFRecord file matches"):
        load(_cfg(tmp_path / "*.tfrecord"), seed=0)
    _write(tmp_path / "a.tfrecord", 5)
    with pytest.raises(DataError, match="required for source 'tfrecord'"):
        load(DataConfig(source="tfrecord", path=str(tmp_path / "a.tfrecord")), seed=0)
