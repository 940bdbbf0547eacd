"""Text for byte-level language models: the default is Python's own pydoc_data topics.

Every UTF-8 byte is a token (vocabulary 256, nothing to download or train).
The text is cut into windows of `sequence_length` bytes; the target of each
position is the next byte. Train, validation and test are contiguous stretches
(80/10/10 of the text by default), so overlapping windows never leak between
splits.
"""
import numpy as np

from pipeline.data.dataset import Data
from pipeline.errors import DataError

VOCABULARY = 256


def default_text():
    """The help topics that ship with every CPython (about 800 KB)."""
    import pydoc_data.topics
    return "".join(pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics))


def read_text(path):
    """A UTF-8 text file's content; DataError when empty or not UTF-8."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"data.path: cannot read {path!r}: {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"data.path: {path!r} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    if not text.strip():
        raise DataError(f"data.path: {path!r} is empty; a language model needs text")
    return text


def load_text(cfg, seed):
    """Windows of bytes and their next-byte targets, split into contiguous stretches."""
    text = read_text(cfg.path) if cfg.path else default_text()
    tokens = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)
    if cfg.max_bytes:
        tokens = tokens[:cfg.max_bytes]
    length = cfg.sequence_length
    n = len(tokens)
    bounds = [0, int(n * (1 - cfg.validation_fraction - cfg.test_fraction)),
              int(n * (1 - cfg.test_fraction)), n]
    splits = []
    for start, end, stride in zip(bounds[:-1], bounds[1:], (length // 2, length, length)):
        part = tokens[start:end]
        starts = np.arange(0, len(part) - length - 1, stride)
        if len(starts) == 0:
            raise DataError(f"data: the text gives too few bytes ({n}) for windows of "
                            f"sequence_length {length} in every split; use more text or "
                            "a shorter sequence_length")
        x = np.stack([part[s:s + length] for s in starts])
        y = np.stack([part[s + 1:s + length + 1] for s in starts])
        splits += [x, y]
    source = cfg.path or "pydoc_data.topics"
    return Data.from_arrays(*splits, class_names=[str(b) for b in range(VOCABULARY)],
                description=f"text {source} ({n:,} bytes used), byte windows of {length}",
                task="language_model",
                preprocessing=f"UTF-8 bytes as int32 token ids, windows of {length}")
