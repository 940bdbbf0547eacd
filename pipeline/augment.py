"""Training-time augmentation applied to tf.data batches (never part of the model).

Kept out of the model on purpose: Keras preprocessing layers such as
RandomTranslation would travel into the saved model, where tfmot's wrappers
and the TFLite converter have to cope with them; a tf.data map leaves the
exported graph exactly the trained network.
"""
from pipeline.backend import tf


def random_shift(max_pixels):
    """A batch map that moves each image by up to `max_pixels` rows and columns
    each way (filling with zeros), independently per image; labels unchanged."""

    def shift(x, y):
        height, width = x.shape[1], x.shape[2]
        padded = tf.pad(x, [[0, 0], [max_pixels, max_pixels], [max_pixels, max_pixels], [0, 0]])

        def crop(image):
            dy, dx = tf.unstack(tf.random.uniform([2], 0, 2 * max_pixels + 1, dtype=tf.int32))
            return image[dy:dy + height, dx:dx + width, :]

        return tf.map_fn(crop, padded), y

    return shift
