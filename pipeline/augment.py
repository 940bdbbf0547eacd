"""Training-time augmentation applied to tf.data batches (never part of the model).

Kept out of the model on purpose: Keras preprocessing layers such as
RandomTranslation would travel into the saved model, where tfmot's wrappers
and the TFLite converter have to cope with them; a tf.data map leaves the
exported graph exactly the trained network.
"""
from pipeline.backend import tf


def random_shift(max_pixels):
    """A batch map (x, y, seed) -> (x shifted, y): moves each image by up to
    `max_pixels` rows and columns each way (filling with zeros), independently
    per image, the moves drawn from `seed` (a pair of integers) alone."""

    def shift(x, y, seed):
        height, width = x.shape[1], x.shape[2]
        padded = tf.pad(x, [[0, 0], [max_pixels, max_pixels], [max_pixels, max_pixels], [0, 0]])
        moves = tf.random.stateless_uniform([tf.shape(x)[0], 2], seed, minval=0,
                                            maxval=2 * max_pixels + 1, dtype=tf.int32)

        def crop(args):
            image, move = args
            return image[move[0]:move[0] + height, move[1]:move[1] + width, :]

        return tf.map_fn(crop, (padded, moves), fn_output_signature=x.dtype), y

    return shift


def shifted(batches, max_pixels, seed):
    """`batches` of (x, y) with each image moved as `random_shift` does.

    Reproducible: the moves come from `seed` through stateless ops, new ones
    each epoch. (A stateful tf.random op in the map made two runs of one
    recipe train different models, though the runner seeds TensorFlow.)
    """
    shift = random_shift(max_pixels)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(batches, seeds).map(lambda xy, s: shift(xy[0], xy[1], s))
