"""Every format greenlite exports, as one table: each module reads a format's facts here.

Which tool makes the file, the converter's settings, whether it is calibrated,
whether the quantization doctor examines (and fixes) it, whether a
microcontroller runs it, which int4 grid it stores, which format stores the
same weights dense: one record per format, `FORMATS[name]`. Nothing else in
greenlite decides what a format means. A new format is one entry here plus
its tests (tests/export/test_formats.py runs every entry through export,
benchmark and the report).

    >>> from export import formats
    >>> formats.get("int8").calibrated
    True
    >>> "int16x8" in formats.names(micro=True)
    True
    >>> formats.names(int4_granularity="blockwise_32")
    ('int4_blockwise',)

The record's converter settings are data that `export/convert.py` applies:
`optimization` (the converter's `Optimize` member), `supported_types`,
`ops` (its `OpsSet` members) and `integer_io`; ai-edge-quantizer's formats
name their recipe in `quantizer`.
"""
import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Format:
    """The facts of one export format.

    Attributes:
      name: the recipe's name for it (`export.formats`).
      summary: one line for docs and messages.
      maker: "converter" (TFLiteConverter), "ai_edge_quantizer" (on the float32
        file), "tf2onnx" (an ONNX file of the Keras model), "onnxruntime" (ONNX
        Runtime's static quantization of that file), "tensorrt" (an engine built
        from an ONNX file) or "doctor" (made by the quantization doctor, never
        asked for).
      runtime: what runs the file: "litert" (a .tflite file: the TFLite
        interpreter, tflite-micro, Vela, LiteRT-LM), "onnxruntime" (an .onnx
        file, on a server's CPU) or "tensorrt" (a serialized engine, on an
        NVIDIA GPU). Only "litert" files go through the device steps (the
        structure check of the TFLite graph, the doctor, deploy checks, NPUs).
      source: for a file made from another format's file (an ONNX int8 file from
        onnx_float32's, an engine from an ONNX file), that format.
      calibrated: conversion needs representative data.
      doctor_examines: the quantization doctor diagnoses its file.
      doctor_fixes: ... and makes a fixed `<variant>_mixed` when it misses its budget.
      micro: integer activations: tflite-micro runs it (the deploy checks).
      int4_granularity: the int4 grid it stores (int4_aware's `granularity`).
      dense_twin: the format holding the same weights stored dense.
      reports_float_ops: the report lists the ops it computes in float.
      sparse_inference: computes in float, so XNNPACK's sparse inference could
        run it, were its weights stored sparse.
      optimization, supported_types, ops, integer_io: the converter's settings
        (`Optimize` member, `supported_types`, `OpsSet` members, int8 input
        and output for float inputs).
      quantizer: ai-edge-quantizer's recipe: {"mode": weight_only | dynamic |
        static, "num_bits" or "activation_num_bits"/"weight_num_bits",
        "granularity"}; for an ONNX or TensorRT format, ONNX Runtime's static
        quantization: {"activations": int8 | uint8, "symmetric_activations"}
        (weights: int8, symmetric, per channel).
    """
    name: str
    summary: str
    maker: str = "converter"
    runtime: str = "litert"
    source: Optional[str] = None
    calibrated: bool = False
    doctor_examines: bool = False
    doctor_fixes: bool = False
    micro: bool = False
    int4_granularity: Optional[str] = None
    dense_twin: Optional[str] = None
    reports_float_ops: bool = False
    sparse_inference: bool = False
    optimization: Optional[str] = None
    supported_types: tuple = ()
    ops: tuple = ()
    integer_io: bool = False
    quantizer: Optional[dict] = None

    @property
    def suffix(self) -> str:
        """The file's extension, by its runtime."""
        return SUFFIXES[self.runtime]

    @property
    def on_device(self) -> bool:
        """A .tflite file: the device steps (TFLite graph checks, doctor, deploy, NPUs) apply."""
        return self.runtime == "litert"

    @property
    def needs_gpu(self) -> bool:
        """Building and running the file needs a CUDA GPU (a TensorRT engine)."""
        return self.runtime == "tensorrt"

    @property
    def requestable(self) -> bool:
        """A recipe may ask for it (the doctor's fixes are made, not asked for)."""
        return self.maker != "doctor"


SUFFIXES = {"litert": ".tflite", "onnxruntime": ".onnx", "tensorrt": ".engine"}

_ENTRIES = (
    Format("float32", "plain conversion", sparse_inference=True),
    Format("float16", "weights stored as float16, computed in float32", sparse_inference=True,
           optimization="DEFAULT", supported_types=("float16",)),
    Format("dynamic_range", "int8 weights, float activations (no calibration data)",
           optimization="DEFAULT"),
    Format("int8", "full integer: int8 weights, activations, input and output, "
           "TFLITE_BUILTINS_INT8 only, calibrated on representative data",
           calibrated=True, doctor_examines=True, doctor_fixes=True, micro=True,
           optimization="DEFAULT", ops=("TFLITE_BUILTINS_INT8",), integer_io=True),
    Format("int8_float_io", "int8 weights and activations with float input and output "
           "(QUANTIZE and DEQUANTIZE at the edges): an app feeds and reads floats",
           calibrated=True, doctor_examines=True, micro=True, optimization="DEFAULT",
           ops=("TFLITE_BUILTINS_INT8",)),
    Format("int16x8", "int16 activations, int8 weights (more precise than int8 for "
           "attention and layer norm); calibrated; float input and output",
           calibrated=True, doctor_examines=True, micro=True, optimization="DEFAULT",
           ops=("EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",)),
    Format("int4_weights", "4-bit weights per channel, dequantized to float before each op "
           "(weight-only; ai-edge-quantizer on the float32 file)",
           maker="ai_edge_quantizer", int4_granularity="channelwise",
           quantizer={"mode": "weight_only", "num_bits": 4, "granularity": "CHANNELWISE"}),
    Format("int4_dynamic", "4-bit weights per channel, activations quantized on the fly "
           "(dynamic range; ai-edge-quantizer on the float32 file)",
           maker="ai_edge_quantizer", int4_granularity="channelwise",
           quantizer={"mode": "dynamic", "num_bits": 4, "granularity": "CHANNELWISE"}),
    Format("int4_blockwise", "as int4_dynamic, with a scale per block of 32 weights (Dense "
           "layers; convolutions stay float)",
           maker="ai_edge_quantizer", int4_granularity="blockwise_32",
           quantizer={"mode": "dynamic", "num_bits": 4, "granularity": "BLOCKWISE_32"}),
    Format("int16x8_mixed", "int16 activations and int8 weights where ai-edge-quantizer has "
           "the op, float elsewhere (layer norm's SQUARED_DIFFERENCE, which has no int16 "
           "kernel); int16 input and output; calibrated by ai-edge-quantizer on the float32 file",
           maker="ai_edge_quantizer", calibrated=True, micro=True, reports_float_ops=True,
           quantizer={"mode": "static", "activation_num_bits": 16, "weight_num_bits": 8}),
    Format("float32_sparse", "float32 whose mostly-zero weights are stored sparse (DENSIFY "
           "ops): fewer file bytes, and the input XNNPACK's sparse inference needs",
           dense_twin="float32", sparse_inference=True, optimization="EXPERIMENTAL_SPARSITY"),
    Format("onnx_float32", "ONNX (opset 17) of the Keras model by tf2onnx, float32, run by "
           "ONNX Runtime: the server's CPU file", maker="tf2onnx", runtime="onnxruntime"),
    Format("onnx_int8", "onnx_float32 quantized by ONNX Runtime's static quantization: QDQ "
           "nodes, int8 weights per channel (symmetric), uint8 activations with zero points "
           "(ONNX Runtime's fast CPU kernels: U8S8), calibrated on representative data",
           maker="onnxruntime", runtime="onnxruntime", source="onnx_float32", calibrated=True,
           quantizer={"activations": "uint8", "symmetric_activations": False}),
    Format("tensorrt_fp16", "a TensorRT engine built from onnx_float32 with FP16 kernels "
           "allowed; needs a CUDA GPU", maker="tensorrt", runtime="tensorrt",
           source="onnx_float32"),
    Format("tensorrt_int8", "a TensorRT engine built from onnx_float32 quantized as QDQ with "
           "int8 activations and weights, all symmetric (zero point 0: TensorRT's explicit "
           "quantization takes no other); needs a CUDA GPU", maker="tensorrt",
           runtime="tensorrt", source="onnx_float32", calibrated=True,
           quantizer={"activations": "int8", "symmetric_activations": True}),
    Format("int8_mixed", "the doctor's fix of an int8 file outside its budget: the worst ops "
           "widened to int16 activations or kept in float", maker="doctor", micro=True),
)
FORMATS = {f.name: f for f in _ENTRIES}
# What `export.formats` may name, in the table's order.
REQUESTABLE = tuple(f.name for f in _ENTRIES if f.requestable)
# ... of them, the .tflite files (a device's; the rest are a server's).
TFLITE = tuple(f.name for f in _ENTRIES if f.requestable and f.on_device)


def get(name: str) -> Format:
    """The record of format `name`.

    Raises:
      KeyError: with the known formats, for a name not in the table.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown format {name!r}; formats: {', '.join(FORMATS)}") from None


def on_device(name: str) -> bool:
    """Format `name` makes a .tflite file (`Format.on_device`). A name the table does not
    hold (a report.json written by an older greenlite) is read as one: every format
    before the server's files was a .tflite file."""
    return name not in FORMATS or FORMATS[name].on_device


def names(**facts) -> tuple:
    """The names of the formats whose facts equal `facts` (`names(calibrated=True)`)."""
    return tuple(f.name for f in _ENTRIES
                 if all(getattr(f, key) == value for key, value in facts.items()))
