"""Image folders: `path/<class name>/<image>`, decoded through tf.data."""
import os

import numpy as np

from pipeline.data.dataset import Data, split
from pipeline.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_image_folder(cfg, seed):
    """Decodes, resizes and scales every image; one subfolder per class.

    Raises:
      DataError: for fewer than two classes, an empty class, a file that is
        not an image, or an image that does not decode (naming the file).
    """
    from pipeline.backend import tf

    if not cfg.image_size:
        raise DataError("data.image_size: required for source 'image_folder' "
                        "(every image is resized to [height, width])")
    if not os.path.isdir(cfg.path):
        raise DataError(f"data.path: {cfg.path!r} is not a directory; an image folder holds "
                        "one subfolder of images per class")
    classes = sorted(d for d in os.listdir(cfg.path)
                     if os.path.isdir(os.path.join(cfg.path, d)) and not d.startswith("."))
    if len(classes) < 2:
        raise DataError(f"data.path: {cfg.path!r} has {len(classes)} class subfolder(s) "
                        f"{classes}; a classifier needs at least 2")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(cfg.path, name)
        files = sorted(f for f in os.listdir(folder) if not f.startswith("."))
        if not files:
            raise DataError(f"data.path: class folder {folder!r} holds no images")
        for f in files:
            path = os.path.join(folder, f)
            if not f.lower().endswith(IMAGE_EXTENSIONS):
                raise DataError(f"data.path: {path!r} is not an image; allowed extensions: "
                                f"{', '.join(IMAGE_EXTENSIONS)}")
            paths.append(path)
            labels.append(label)

    height, width = cfg.image_size

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=cfg.channels,
                                   expand_animations=False)
        return tf.image.resize(image, (height, width)) / cfg.scale

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    try:
        x = np.stack(list(dataset.as_numpy_iterator())).astype(np.float32)
    except tf.errors.OpError:
        raise DataError(f"data.path: {_first_undecodable(paths, cfg.channels)!r} is not a "
                        "readable image (corrupt or truncated)") from None
    y = np.asarray(labels, dtype=np.int64)
    parts = split(x, y, cfg.validation_fraction, cfg.test_fraction, seed)
    return Data(*parts, class_names=classes,
                description=f"image folder {cfg.path} resized to {height}x{width}",
                preprocessing=f"decode, {'grayscale' if cfg.channels == 1 else 'RGB'}, bilinear "
                              f"resize to {height}x{width}, divide by {cfg.scale:g}")


def _first_undecodable(paths, channels):
    """Finds the file that broke the tf.data pipeline, decoding one at a time."""
    from pipeline.backend import tf
    for path in paths:
        try:
            tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        except tf.errors.OpError:
            return path
    return paths[0]
