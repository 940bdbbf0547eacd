"""One split of a dataset (train, validation or test), in memory or streamed.

Every consumer goes through the same four calls, so a stage never needs to
know whether the examples sit in memory or are decoded file by file:

  len(split)                            how many examples
  split.example_shape                   the shape of one input
  split.batches(batch_size, shuffle)    a tf.data pipeline of (x, y) batches
  split.sample(count, seed)             `count` examples as numpy arrays

`ArraySplit` holds numpy arrays (digits, npz, text). `StreamSplit` holds only
an index per example and decodes examples as tf.data asks for them (image
folders, TFRecord shards), so a dataset larger than memory trains and
evaluates without being loaded whole.
"""
import numpy as np


class WithheldSplit:
    """Stands in for the test split of a run judged on validation (a search's
    trial): its size is known, and any read of its examples is a bug."""

    def __init__(self, count):
        self.count = count

    def __len__(self):
        return self.count

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(name)
        raise RuntimeError(f"the test split is withheld from a run judged on the validation "
                           f"split (benchmark.split: val); read of .{name}")


class ArraySplit:
    """Examples held in memory as numpy arrays `x` and `y`."""

    streamed = False

    def __init__(self, x, y):
        self.x, self.y = x, y

    @property
    def labels(self):
        """The labels, for checks on the split (class counts)."""
        return self.y

    def __len__(self):
        return len(self.x)

    @property
    def example_shape(self):
        return tuple(self.x.shape[1:])

    def batches(self, batch_size, shuffle=False, seed=0):
        from pipeline.backend import tf
        dataset = tf.data.Dataset.from_tensor_slices((self.x, self.y))
        if shuffle:
            dataset = dataset.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size).prefetch(2)

    def sample(self, count, seed):
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(self), size=min(count, len(self)), replace=False)
        return self.x[chosen], self.y[chosen]


class StreamSplit:
    """Examples decoded on demand, from one of two kinds of source.

    `indices` are the positions (in the source's own numbering) that belong
    to this split, in the split's order; `labels`, if given, their labels. Give either
      decode: a tf function index -> (x, y), for sources with random access
        (files by path); or
      records and decode_record: `records()` a tf.data of the source's
        (index, record) pairs in order, `decode_record(record)` -> (x, y),
        for sources read in sequence (TFRecord shards).
    """

    streamed = True

    def __init__(self, indices, example_shape, decode=None, records=None,
                 decode_record=None, shuffle_buffer=10_000, labels=None):
        if (decode is None) == (records is None):
            raise ValueError("give either decode (random access) or records and decode_record")
        self.indices = np.asarray(indices, dtype=np.int64)
        self._example_shape = tuple(example_shape)
        self._decode, self._records, self._decode_record = decode, records, decode_record
        self.shuffle_buffer = shuffle_buffer
        # The split's labels when the source knows them without decoding (None otherwise).
        self.labels = None if labels is None else np.asarray(labels)

    def __len__(self):
        return len(self.indices)

    @property
    def example_shape(self):
        return self._example_shape

    def _dataset(self, indices, shuffle=False, seed=0):
        from pipeline.backend import tf
        autotune = tf.data.AUTOTUNE
        if self._decode is not None:
            dataset = tf.data.Dataset.from_tensor_slices(indices)
            if shuffle:
                # Shuffling indices is a full shuffle at the cost of 8 bytes an example.
                dataset = dataset.shuffle(len(indices), seed=seed, reshuffle_each_iteration=True)
            return dataset.map(self._decode, num_parallel_calls=autotune, deterministic=True)
        # Sequential records: keep those whose index is in this split, in file order.
        members = tf.constant(np.isin(np.arange(int(indices.max()) + 1 if len(indices) else 0),
                                      indices))
        count = members.shape[0]
        dataset = self._records().filter(
            lambda i, record: tf.logical_and(i < count, tf.gather(members, tf.minimum(i, count - 1))))
        dataset = dataset.map(lambda i, record: self._decode_record(record),
                              num_parallel_calls=autotune, deterministic=True)
        if shuffle:
            dataset = dataset.shuffle(min(self.shuffle_buffer, len(indices)), seed=seed,
                                      reshuffle_each_iteration=True)
        return dataset

    def batches(self, batch_size, shuffle=False, seed=0):
        from pipeline.backend import tf
        return self._dataset(self.indices, shuffle, seed).batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def sample(self, count, seed):
        rng = np.random.default_rng(seed)
        chosen = self.indices[rng.choice(len(self), size=min(count, len(self)), replace=False)]
        if self._decode is None:
            chosen = np.sort(chosen)  # read in file order
        xs, ys = [], []
        for x, y in self._dataset(chosen).as_numpy_iterator():
            xs.append(x)
            ys.append(y)
        return np.stack(xs), np.stack(ys)
