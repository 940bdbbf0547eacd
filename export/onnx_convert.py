"""ONNX files of a Keras model: tf2onnx for float32, ONNX Runtime's static quantization for int8.

The server side of export/formats.py (runtime "onnxruntime"): the same Keras
model the TFLite files come from, as an ONNX file that ONNX Runtime runs on a
server's CPU and TensorRT builds an engine from (export/tensorrt_engine.py).

    onnx_file = to_onnx(model)                          # bytes of an ONNX ModelProto
    int8 = quantize_int8(onnx_file, representative)     # QDQ nodes (U8S8)

Why ONNX Runtime's quantizer and not NVIDIA Model Optimizer's
(`modelopt.onnx.quantization`): ModelOpt 0.47 requires torch >= 2.8, cupy-cuda12x,
onnx ~= 1.21 and onnxruntime-gpu 1.24 in place of onnxruntime, which cannot sit
beside TF 2.21 in one environment here; ONNX Runtime's `quantize_static` writes
the QDQ form TensorRT's explicit quantization reads (symmetric int8, zero
points 0) as well as the U8S8 form its own CPU kernels run fastest, from the
same representative data as TFLite's int8 (BUILD_NOTES.md, "ONNX and TensorRT").
"""
import os
import tempfile
from collections import Counter

OPSET = 17


def to_onnx(model, opset: int = OPSET, fmt: str = "onnx_float32") -> bytes:
    """The ONNX file (bytes) of a tf_keras model, or of a SavedModel's 'serve' function
    (models.keras3.SavedModelSource), converted by tf2onnx.

    `fmt`: the format asked for, named in errors (onnx_int8 starts here too).

    Raises:
      ExportError: one line naming the TensorFlow ops tf2onnx cannot express.
    """
    import tf2onnx

    from models.keras3 import SavedModelSource
    from pipeline.backend import tf
    from pipeline.errors import ExportError
    with _quiet_tf2onnx():
        try:
            if isinstance(model, SavedModelSource):
                proto, _ = tf2onnx.convert.from_function(
                    model._serve, input_signature=model.inputs, opset=opset,
                    custom_op_handlers=HANDLERS)
            else:
                signature = [tf.TensorSpec(i.shape, i.dtype, name=_input_name(i, k))
                             for k, i in enumerate(model.inputs)]
                proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature,
                                                      opset=opset,
                                                      custom_op_handlers=HANDLERS)
        except Exception as e:  # tf2onnx raises ValueError, KeyError, RuntimeError ...
            raise ExportError(f"{fmt}: tf2onnx failed: {_unsupported(e)}") from None
    import onnx
    unsupported = [n.op_type for n in proto.graph.node
                   if not onnx.defs.has(n.op_type, n.domain)
                   and n.domain not in ("com.microsoft",)]
    if unsupported:
        # tf2onnx keeps a TensorFlow op it cannot express under the op's own name
        # (Lgamma, Bitcast): no ONNX schema, no ONNX Runtime kernel, a file that
        # cannot load. Refuse it here, naming the ops.
        names = ", ".join(f"{op} x{n}" for op, n in Counter(unsupported).items())
        raise ExportError(f"{fmt}: tf2onnx cannot express these TensorFlow ops in "
                          f"ONNX opset {opset}: {names}")
    return proto.SerializeToString()


def _erfc(ctx, node, name, args):  # pylint: disable=unused-argument
    """TensorFlow's Erfc as 1 - Erf: tf_keras' exact GELU (`gelu(approximate=False)`)
    computes 0.5 x erfc(-x / sqrt 2), and tf2onnx 1.17 has no handler for Erfc."""
    import numpy as np
    from tf2onnx import utils
    x = node.input[0]
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(x))
    erf = ctx.make_node("Erf", [x], op_name_scope=node.name)
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


# TensorFlow ops tf2onnx cannot convert by itself, as {op: (handler, args)}.
HANDLERS = {"Erfc": (_erfc, [])}


def quantize_int8(float_onnx: bytes, representative, activations: str = "uint8",
                  symmetric_activations: bool = False, fmt: str = "onnx_int8") -> bytes:
    """`float_onnx` with int8 weights (symmetric, per channel) and 8-bit activations as QDQ
    nodes, calibrated by ONNX Runtime's MinMax static quantization on `representative`
    (first axis: examples).

    `activations`: "uint8" with zero points (U8S8: what ONNX Runtime's x86 CPU
    kernels run fastest; measured 3x faster than S8S8 symmetric on MobileNetV2
    here) or "int8"; `symmetric_activations`: zero points 0 (TensorRT's explicit
    quantization takes no other). `fmt` is named in errors.

    Raises:
      ExportError: with too few calibration examples, or when ONNX Runtime fails.
    """
    import numpy as np
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pipeline.errors import ExportError
    if representative is None or len(representative) < 1:
        raise ExportError(f"{fmt} needs representative data for calibration "
                          "(data.representative_samples >= 1)")
    model = onnx.load_from_string(float_onnx)
    name = model.graph.input[0].name
    dtype = np.int32 if model.graph.input[0].type.tensor_type.elem_type == 6 else np.float32

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.examples = iter(representative)

        def get_next(self):
            example = next(self.examples, None)
            return None if example is None else {name: np.asarray(example[None], dtype)}

    with tempfile.TemporaryDirectory(prefix="greenlite-onnx-") as tmp:
        source, prepared, out = (os.path.join(tmp, f) for f in ("f.onnx", "p.onnx", "q.onnx"))
        with open(source, "wb") as f:
            f.write(float_onnx)
        try:
            # Shape inference and constant folding first, as ONNX Runtime advises;
            # the symbolic pass would need sympy and the shapes here are static.
            quant_pre_process(source, prepared, skip_symbolic_shape=True)
            quantize_static(prepared, out, Reader(), quant_format=QuantFormat.QDQ,
                            activation_type={"uint8": QuantType.QUInt8,
                                             "int8": QuantType.QInt8}[activations],
                            weight_type=QuantType.QInt8, per_channel=True,
                            extra_options={"ActivationSymmetric": symmetric_activations,
                                           "WeightSymmetric": True})
        except Exception as e:  # ONNX Runtime raises several types
            raise ExportError(f"{fmt}: ONNX Runtime's quantization failed: "
                              f"{_first_line(e)}") from None
        with open(out, "rb") as f:
            return f.read()


def op_counts(path_or_bytes) -> dict:
    """{ONNX op type: count} of a file's graph (QuantizeLinear and DequantizeLinear included)."""
    import onnx
    model = (onnx.load_from_string(path_or_bytes) if isinstance(path_or_bytes, bytes)
             else onnx.load(path_or_bytes))
    return dict(Counter(n.op_type for n in model.graph.node))


def _input_name(tensor, k):
    name = getattr(tensor, "name", "") or f"input_{k}"
    return name.split(":")[0]


def _unsupported(error):
    """tf2onnx's reason as one line; its 'Unsupported ops' list when it gives one."""
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


class _quiet_tf2onnx:
    """tf2onnx logs every step at INFO; a run shows only greenlite's lines."""

    def __enter__(self):
        import logging
        self.logger = logging.getLogger("tf2onnx")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)
