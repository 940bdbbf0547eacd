"""Training-time augmentation: a random shift of each image, and where it is refused."""
import numpy as np
import pytest

from pipeline.augment import random_shift
from pipeline.errors import RecipeError
from tests.conftest import run_stage


def _shifted(image, dy, dx):
    """`image` moved down dy rows and right dx columns, zeros coming in."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_each_image_is_moved_by_at_most_the_shift():
    from pipeline.backend import tf
    tf.random.set_seed(0)
    images = np.random.default_rng(0).random((64, 6, 5, 2)).astype(np.float32) + 1.0
    labels = np.arange(64)
    out, out_labels = random_shift(1)(tf.constant(images), tf.constant(labels),
                                      tf.constant([3, 4], tf.int64))
    out = out.numpy()
    assert out.shape == images.shape and np.array_equal(out_labels.numpy(), labels)
    moves = []
    for image, result in zip(images, out):
        matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                   if np.array_equal(_shifted(image, dy, dx), result)]
        assert len(matches) == 1
        moves.append(matches[0])
    assert len(set(moves)) == 9  # all nine moves occur over 64 images


def test_the_shifts_are_reproducible_and_new_each_epoch():
    """The same seed moves the same images alike in a second pipeline (so a
    recipe trains the same model twice); each epoch draws new moves."""
    from pipeline.augment import shifted
    from pipeline.backend import tf
    images = np.random.default_rng(0).random((40, 6, 6, 1)).astype(np.float32) + 1.0
    labels = np.arange(40)

    def epochs(seed, count=2):
        batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
        dataset = shifted(batches, 1, seed)
        return [np.concatenate([x for x, _ in dataset.as_numpy_iterator()])
                for _ in range(count)]

    first, second = epochs(seed=7)
    again = epochs(seed=7, count=1)[0]
    other = epochs(seed=8, count=1)[0]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, other)
    # Every image moved by at most one pixel: its sum lost at most one row and column.
    assert np.all(first.sum(axis=(1, 2, 3)) <= images.sum(axis=(1, 2, 3)) + 1e-4)


def test_training_with_shifts(digits, tmp_path):
    import models
    from pipeline.training import accuracy
    model = models.build("digits_cnn", (8, 8, 1), 10)
    model, _ = run_stage("train", {"epochs": 6, "augment_shift": 1}, model, digits, tmp_path)
    assert accuracy(model, digits.test) > 0.9


def test_shifting_needs_images(tmp_path):
    import models
    from pipeline.data import DataConfig, load
    text = load(DataConfig(source="text", max_bytes=4000, sequence_length=16), seed=0)
    model = models.build("tiny_transformer", text.input_shape, text.num_classes,
                         {"width": 16, "heads": 2, "layers": 1})
    with pytest.raises(RecipeError, match=r"train.augment_shift: got 1, but the inputs have "
                                          r"shape \(16,\); shifting needs images"):
        run_stage("train", {"epochs": 1, "augment_shift": 1}, model, text, tmp_path)


def _blends(result, images):
    """Every (i, j, w) with i < j and result == w * images[i] + (1 - w) * images[j]."""
    found = []
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            difference = images[i] - images[j]
            weight = np.sum((result - images[j]) * difference) / np.sum(difference * difference)
            if np.allclose(result, weight * images[i] + (1 - weight) * images[j], atol=1e-5):
                found.append((i, j, weight))
    return found


def test_mixup_blends_each_image_with_another_keeping_its_label():
    """Each output is a blend of its own image (the larger share, so the label
    stays right) and one other image of the batch; the weights vary."""
    from pipeline.augment import random_mixup
    from pipeline.backend import tf
    images = np.random.default_rng(0).random((16, 4, 4, 1)).astype(np.float32)
    labels = np.arange(16)
    out, out_labels = random_mixup(1.0)(tf.constant(images), tf.constant(labels),
                                        tf.constant([3, 4], tf.int64))
    assert np.array_equal(out_labels.numpy(), labels)
    own_shares = []
    for k, result in enumerate(out.numpy()):
        blends = _blends(result, images)
        assert len(blends) == 1 and k in blends[0][:2]
        i, _, weight = blends[0]
        own_shares.append(weight if i == k else 1 - weight)
    assert min(own_shares) >= 0.5 - 1e-5 and max(own_shares) <= 1 + 1e-5
    assert np.std(own_shares) > 0.05  # drawn per image, not one weight for the batch


def test_a_recipe_with_mixup_trains_on_blends(digits):
    """The batches a stage with augment_mixup trains on are blends, not the
    training images; the same seed gives the same blends."""
    from pipeline.training import FitConfig, train_batches

    def first_batch(cfg):
        return next(iter(train_batches(digits, cfg, seed=5).as_numpy_iterator()))[0]

    plain = first_batch(FitConfig())
    blended = first_batch(FitConfig(augment_mixup=1.0))
    training = {image.tobytes() for image in np.asarray(digits.train.x, np.float32)}
    assert all(image.tobytes() in training for image in plain)
    assert sum(image.tobytes() not in training for image in blended) > len(blended) // 2
    assert np.array_equal(blended, first_batch(FitConfig(augment_mixup=1.0)))


def test_mixup_needs_a_teacher(digits, tmp_path):
    import models
    model = models.build("digits_cnn", (8, 8, 1), 10, {"width": 0.25, "dense_units": 16})
    with pytest.raises(RecipeError, match=r"train.augment_mixup: got 1.0, but the stage has no "
                                          r"teacher; a blend of two images has no label"):
        run_stage("train", {"epochs": 1, "augment_mixup": 1.0}, model, digits, tmp_path)
