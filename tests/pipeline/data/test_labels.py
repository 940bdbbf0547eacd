"""Labels are classes 0 .. num_classes-1, each with training examples, for every source."""
import numpy as np
import pytest

from pipeline.data import DataConfig, load
from pipeline.errors import DataError
from tests.pipeline.data.test_tfrecord import SPEC, _write


def _npz(tmp_path, y, **extra):
    path = tmp_path / "d.npz"
    x = np.random.default_rng(0).random((len(y), 4, 4, 1)).astype(np.float32)
    np.savez(path, x=x, y=np.asarray(y), **extra)
    return DataConfig(source="npz", path=str(path))


def test_labels_that_do_not_start_at_zero(tmp_path):
    cfg = _npz(tmp_path, np.repeat(np.arange(20, 30), 12))
    with pytest.raises(DataError, match=r"data: class\(es\) 0, 1, 2, 3, 4, 5, 6, 7, \.\.\. \(20 in "
                                        r"all\) of 0 \.\. 29 have no example in the training split "
                                        r"\(labels present: 20, 21, .*\); labels must be 0"):
        load(cfg, seed=0)


def test_a_declared_class_without_examples(tmp_path):
    cfg = _npz(tmp_path, np.repeat(np.arange(3), 12))
    cfg.num_classes = 5
    with pytest.raises(DataError, match=r"class\(es\) 3, 4 of 0 \.\. 4 have no example"):
        load(cfg, seed=0)


def test_labels_beyond_the_declared_classes(tmp_path):
    cfg = _npz(tmp_path, np.repeat(np.arange(4), 12))
    cfg.num_classes = 3
    with pytest.raises(DataError, match=r"label\(s\) 3 lie outside the 3 classes 0 \.\. 2"):
        load(cfg, seed=0)


def test_declared_classes_that_fit(tmp_path):
    cfg = _npz(tmp_path, np.repeat(np.arange(4), 12))
    cfg.num_classes = 4
    assert load(cfg, seed=0).num_classes == 4


def test_tfrecord_labels(tmp_path):
    _write(tmp_path / "a.tfrecord", 30)  # labels 0, 1, 2
    cfg = DataConfig(source="tfrecord", path=str(tmp_path / "a.tfrecord"), features=SPEC,
                     x_feature="image", y_feature="label", num_classes=2)
    with pytest.raises(DataError, match=r"label\(s\) 2 lie outside the 2 classes"):
        load(cfg, seed=0)
    cfg.num_classes = 4
    with pytest.raises(DataError, match=r"class\(es\) 3 of 0 \.\. 3 have no example"):
        load(cfg, seed=0)


@pytest.mark.parametrize("declared", [2, 4])
def test_image_folder_classes_must_match_the_declaration(tmp_path, declared):
    """Fewer declared than the folder holds is refused as firmly as more: a check of
    one side only would train three classes under a declaration of two."""
    from pipeline.data.synthetic import scene_images
    scene_images(str(tmp_path / "images"), classes=("circle", "square", "cross"), per_class=6,
                 size=16)
    cfg = DataConfig(source="image_folder", path=str(tmp_path / "images"), image_size=[16, 16],
                     num_classes=declared)
    with pytest.raises(DataError, match=rf"data.num_classes: got {declared}, but .* has 3 class "
                                        r"subfolders \(circle, cross, square\)"):
        load(cfg, seed=0)
    cfg.num_classes = 3
    assert load(cfg, seed=0).num_classes == 3
