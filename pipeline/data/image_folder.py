"""Image folders: `path/<class name>/<image>`, streamed through tf.data.

Only the file paths are held in memory; each image is decoded, resized and
scaled when tf.data reads it, so a folder larger than memory trains.
"""
import os

import numpy as np

from pipeline.data.dataset import Data, normalization, split
from pipeline.data.split import StreamSplit
from pipeline.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load_image_folder(cfg, seed):
    """Lists the images (one subfolder per class) and splits them, stratified and seeded.

    Raises:
      DataError: for fewer than two classes, an empty class, a file that is
        not an image, or an image that does not decode (naming the file).
    """
    from pipeline.backend import tf

    # Unset (auto) and not decided by the run from the model: 8-bit pixels to [0, 1].
    scale = 255.0 if cfg.scale is None else cfg.scale
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
    if cfg.num_classes and cfg.num_classes != len(classes):
        raise DataError(f"data.num_classes: got {cfg.num_classes}, but {cfg.path!r} has "
                        f"{len(classes)} class subfolders ({', '.join(classes[:10])}"
                        f"{', ...' if len(classes) > 10 else ''}); they must agree")
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
    path_table = tf.constant(paths)
    label_table = tf.constant(labels, dtype=tf.int64)

    def decode_file(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=cfg.channels,
                                   expand_animations=False)
        return tf.image.resize(image, (height, width)) / scale

    def decode(index):
        return decode_file(tf.gather(path_table, index)), tf.gather(label_table, index)

    _check_every_image_decodes(paths, decode_file)
    y = np.asarray(labels, dtype=np.int64)
    # Only indices are split (stratified, seeded); images are decoded when read.
    parts = split(np.arange(len(paths)), y, cfg.validation_fraction, cfg.test_fraction, seed)
    train, val, test = (StreamSplit(indices, (height, width, cfg.channels), decode=decode,
                                    labels=labels)
                        for indices, labels in zip(parts[0::2], parts[1::2]))
    return Data(train, val, test, class_names=classes,
                description=f"image folder {cfg.path} resized to {height}x{width}",
                preprocessing=f"decode, {'grayscale' if cfg.channels == 1 else 'RGB'}, bilinear "
                              f"resize to {height}x{width}, divide by {scale:g}",
                normalization=normalization(0.0, scale, 0.0, 255.0, "image",
                                            "GRAYSCALE" if cfg.channels == 1 else "RGB"))


def _check_every_image_decodes(paths, decode_file):
    """One streaming pass that decodes every image and keeps none of them, so a
    corrupt file is reported now, by name, rather than as a crash mid-training."""
    from pipeline.backend import tf
    dataset = tf.data.Dataset.from_tensor_slices(paths).map(
        # A value that depends on the pixels, so the decode cannot be optimised away.
        lambda path: tf.reduce_sum(decode_file(path)), num_parallel_calls=tf.data.AUTOTUNE)
    try:
        dataset.reduce(tf.constant(0.0), lambda total, pixels: total + pixels)
    except tf.errors.OpError:
        raise DataError(f"data.path: {_first_undecodable(paths, decode_file)!r} is not a "
                        "readable image (corrupt or truncated)") from None


def _first_undecodable(paths, decode_file):
    """Finds the file that broke the tf.data pipeline, decoding one at a time."""
    from pipeline.backend import tf
    for path in paths:
        try:
            decode_file(tf.constant(path))
        except tf.errors.OpError:
            return path
    return paths[0]
