"""The zoo Transformer's `embeddings="matmul"`: the same function as the lookups."""
import numpy as np
import pytest

import models
from pipeline.errors import ModelError

SMALL = {"width": 32, "heads": 2, "layers": 1, "mlp_width": 64}
LENGTH, VOCABULARY = 32, 64


def _pair():
    from pipeline.backend import keras
    keras.utils.set_random_seed(0)
    gather = models.build("tiny_transformer", (LENGTH,), VOCABULARY, SMALL)
    matmul = models.build("tiny_transformer", (LENGTH,), VOCABULARY,
                          {**SMALL, "embeddings": "matmul"})
    for source, target in zip(gather.layers, matmul.layers):
        target.set_weights(source.get_weights())
    return gather, matmul


def test_matmul_embeddings_compute_what_the_lookups_compute():
    gather, matmul = _pair()
    tokens = np.random.default_rng(0).integers(0, VOCABULARY, (4, LENGTH)).astype(np.int32)
    np.testing.assert_allclose(matmul(tokens).numpy(), gather(tokens).numpy(), atol=1e-5)


# That int4 files of the matmul model hold the tables at 4 bits and no (L, L)
# mask or position constant: tests/pipeline/test_run_text.py, on a real run.


def test_matmul_embeddings_need_a_bounded_mask():
    with pytest.raises(ModelError, match="needs a bounded mask_value"):
        models.build("tiny_transformer", (LENGTH,), VOCABULARY,
                     {**SMALL, "embeddings": "matmul", "mask_value": None})
