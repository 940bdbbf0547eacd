"""The zoo Transformer's `embeddings="matmul"`: the same function, tables that quantize."""
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


def test_matmul_embeddings_leave_no_float_table_or_mask_in_the_int4_file(tmp_path):
    # Breaks if the tables go back to a GATHER (ai-edge-quantizer leaves them
    # float32) or the positions or the causal mask fold into constants.
    from export.convert import convert
    from export.tflite_file import weight_tensors
    gather, matmul = _pair()
    tokens = np.random.default_rng(0).integers(0, VOCABULARY, (8, LENGTH)).astype(np.int32)
    float_tensors = {}
    for name, model in (("gather", gather), ("matmul", matmul)):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(convert(model, "int4_blockwise", tokens))
        float_tensors[name] = [w.shape for w in weight_tensors(path)
                               if w.dtype == "float32" and np.prod(w.shape) >= LENGTH * LENGTH]
        if name == "matmul":
            int4 = {w.shape for w in weight_tensors(path) if w.dtype == "int4"}
            assert (SMALL["width"], VOCABULARY) in int4  # the token table, (out, in)
            assert (SMALL["width"], LENGTH) in int4  # the position table
    # The control: the lookup model keeps its tables and the (L, L) mask in float32.
    assert (VOCABULARY, SMALL["width"]) in float_tensors["gather"]
    assert any(shape[-2:] == (LENGTH, LENGTH) for shape in float_tensors["gather"])
    assert float_tensors["matmul"] == []


def test_matmul_embeddings_need_a_bounded_mask():
    with pytest.raises(ModelError, match="needs a bounded mask_value"):
        models.build("tiny_transformer", (LENGTH,), VOCABULARY,
                     {**SMALL, "embeddings": "matmul", "mask_value": None})
