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
    return _per_batch(batches, random_shift(max_pixels), seed)


def random_mixup(concentration):
    """A batch map (x, y, seed) -> (x mixed, y): each image blended with
    another of its batch (never itself), x' = lam * x + (1 - lam) * x[partner], lam drawn
    per image from Beta(concentration, concentration) and folded into
    [0.5, 1], so the label of the larger share, y, stays the label.

    For distillation ("function matching", Beyer et al. 2022): the teacher
    labels each blend, so the student learns the teacher's function between
    the training images too, not only at them.
    """

    def mix(x, y, seed):
        count = tf.shape(x)[0]
        order_seed, first, second = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        # The next image in a random cycle through the batch: never the image
        # itself (a plain permutation leaves about one image per batch unmixed).
        order = tf.argsort(tf.random.stateless_uniform([count], order_seed))
        partner = tf.scatter_nd(order[:, None], tf.roll(order, -1, axis=0), [count])
        a = tf.random.stateless_gamma([count], first, alpha=concentration)
        b = tf.random.stateless_gamma([count], second, alpha=concentration)
        lam = a / (a + b)
        lam = tf.maximum(lam, 1.0 - lam)
        lam = tf.reshape(tf.cast(lam, x.dtype), [-1] + [1] * (len(x.shape) - 1))
        return lam * x + (1.0 - lam) * tf.gather(x, partner), y

    return mix


def mixed(batches, concentration, seed):
    """`batches` of (x, y) with each image blended as `random_mixup` does;
    reproducible from `seed`, new blends each epoch (as `shifted`)."""
    # Another stream than the shifts' (seed + 1): the blends do not follow the moves.
    return _per_batch(batches, random_mixup(concentration), seed + 1)


def _per_batch(batches, augment, seed):
    """`batches` mapped by `augment(x, y, pair of seeds)`, the pairs drawn from
    `seed`'s stream, new each epoch."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(batches, seeds).map(lambda xy, s: augment(xy[0], xy[1], s))
