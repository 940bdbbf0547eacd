"""Data sources on small files made by the tests."""
import numpy as np
import pytest

from pipeline.data import DataConfig, load
from pipeline.errors import DataError


def test_digits_split_is_fixed_and_seeded():
    a = load(DataConfig(), seed=0)
    b = load(DataConfig(), seed=0)
    c = load(DataConfig(), seed=1)
    assert len(a.train.x) + len(a.val.x) + len(a.test.x) == 1797
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10
    np.testing.assert_array_equal(a.test.x, b.test.x)
    assert not np.array_equal(a.test.x, c.test.x)
    assert 0.0 <= a.train.x.min() and a.train.x.max() <= 1.0


def test_representative_comes_from_training_data(digits):
    rep = digits.representative(50, seed=0)
    assert rep.shape == (50, 8, 8, 1)
    train = {x.tobytes() for x in digits.train.x}
    assert all(x.tobytes() in train for x in rep)


def test_npz_with_x_y(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.rand(100, 4).astype(np.float32), y=np.arange(100) % 3)
    data = load(DataConfig(source="npz", path=str(path)), seed=0)
    assert data.num_classes == 3 and data.input_shape == (4,)
    assert len(data.train.x) + len(data.val.x) + len(data.test.x) == 100


def test_npz_with_its_own_test_split(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((40, 2)), y_train=np.arange(40) % 2,
             x_test=np.ones((7, 2)), y_test=np.arange(7) % 2)
    data = load(DataConfig(source="npz", path=str(path)), seed=0)
    assert len(data.test.x) == 7 and np.all(data.test.x == 1)
    assert len(data.train.x) + len(data.val.x) == 40


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((5, 2)), "y": np.zeros(4, int)}, "x has 5 examples but y has 4"),
    ({"a": np.zeros(3)}, "expected 'x' and 'y'"),
    ({"x": np.zeros((4, 2)), "y": np.array([0, 1, -1, 1])}, r"label\(s\) -1 lie outside the 2 classes 0 \.\. 1"),
    ({"x": np.zeros((4, 2)), "y": np.array([0.5, 1, 1, 0])}, "expected integer class indices"),
])
def test_bad_npz(tmp_path, arrays, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load(DataConfig(source="npz", path=str(path)), seed=0)


def test_missing_path():
    with pytest.raises(DataError, match="data.path: '/no/such.npz' does not exist"):
        load(DataConfig(source="npz", path="/no/such.npz"), seed=0)


def _image_folder(root, classes=("cat", "dog"), per_class=6):
    from pipeline.backend import tf
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((12, 10, 3), 40 * c + i, dtype=np.uint8)
            (root / name / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    return root


def test_image_folder(tmp_path):
    root = _image_folder(tmp_path / "images")
    data = load(DataConfig(source="image_folder", path=str(root), image_size=[8, 8]), seed=0)
    assert data.class_names == ["cat", "dog"]
    assert data.input_shape == (8, 8, 3)
    assert data.streamed and len(data.train) + len(data.val) + len(data.test) == 12
    seen = []
    for split in (data.train, data.val, data.test):
        for x, y in split.batches(4).as_numpy_iterator():
            assert x.shape[1:] == (8, 8, 3) and x.dtype == np.float32
            for image, label in zip(x, y):
                # Each image is one flat colour 40 * class + i: the label must match it.
                value = round(float(image[0, 0, 0]) * 255)
                assert np.allclose(image, value / 255, atol=1e-6) and value // 40 == label
                seen.append(value)
    assert sorted(seen) == sorted(40 * c + i for c in range(2) for i in range(6))


def test_image_folder_with_a_file_that_is_not_an_image(tmp_path):
    root = _image_folder(tmp_path / "images")
    (root / "dog" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes.txt' is not an image; allowed extensions"):
        load(DataConfig(source="image_folder", path=str(root), image_size=[8, 8]), seed=0)


def test_image_folder_with_a_corrupt_image(tmp_path):
    root = _image_folder(tmp_path / "images")
    (root / "cat" / "3.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"cat/3.png' is not a readable image"):
        load(DataConfig(source="image_folder", path=str(root), image_size=[8, 8]), seed=0)


def test_image_folder_needs_two_classes(tmp_path):
    root = _image_folder(tmp_path / "images", classes=("only",))
    with pytest.raises(DataError, match="a classifier needs at least 2"):
        load(DataConfig(source="image_folder", path=str(root), image_size=[8, 8]), seed=0)


def test_a_withheld_split_has_a_size_and_no_examples():
    """The test split of a run judged on validation (pipeline/run.py)."""
    from pipeline.data.split import WithheldSplit
    split = WithheldSplit(360)
    assert len(split) == 360
    with pytest.raises(RuntimeError, match="withheld from a run judged on the validation"):
        split.batches(32)
