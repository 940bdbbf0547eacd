"""Reads a .tflite file: its operators, and its weight tensors with their statistics.

Built on `ai_edge_litert.tools.flatbuffer_utils` (the TFLite schema's own
object API, shipped with ai-edge-litert), not on hand-parsed bytes. Used to
verify in the exported file what a stage claims: sparsity (pruning), unique
values per channel (clustering, ternary weights).

    for w in weight_tensors("model.tflite"):
        print(w.name, w.dtype, w.shape, kernel_stats(w.values))
"""
import dataclasses
import re

import numpy as np

# TensorType enum values of the TFLite schema → numpy dtypes.
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64,
           7: np.int16, 9: np.int8}
INT4 = 17  # two values a byte, low nibble first; read into int8 arrays
BLOCKWISE = 2  # QuantizationDetails.BlockwiseQuantization


def unpack_int4(data, count):
    """`count` signed 4-bit values from packed bytes (low nibble first), as int8."""
    packed = np.frombuffer(bytes(data), dtype=np.uint8)
    values = np.empty(packed.size * 2, dtype=np.int8)
    values[0::2], values[1::2] = packed & 0x0F, packed >> 4
    values[values >= 8] -= 16
    return values[:count]


@dataclasses.dataclass
class WeightTensor:
    """A constant tensor of rank >= 2 (a kernel), as stored in the file (int4
    values unpacked into an int8 array; `dtype` says "int4")."""
    name: str
    dtype: str
    shape: tuple
    values: np.ndarray
    # Per-channel (or per-tensor) scales, and the quantized axis; None for floats.
    # Blockwise (ai-edge-quantizer's int4_blockwise): scale is (outputs,
    # inputs / block_size), one per block of block_size inputs of each output.
    scale: object = None
    quantized_dimension: int = 0
    block_size: int = 0

    def dequantized(self):
        """The values the interpreter computes with (float32): stored value x scale."""
        values = self.values.astype(np.float32)
        if self.scale is None or self.dtype.startswith("float"):
            return values
        scale = np.asarray(self.scale, dtype=np.float32)
        if self.block_size:
            return values * np.repeat(scale, self.block_size, axis=1).reshape(values.shape)
        shape = [1] * values.ndim
        shape[self.quantized_dimension] = -1
        return values * (scale.reshape(shape) if scale.size > 1 else scale)


def read_model(path):
    """The file's ModelT (flatbuffer object API)."""
    from ai_edge_litert.tools import flatbuffer_utils
    return flatbuffer_utils.read_model(path)


def operators(path):
    """[(op name, op version)] in execution order of the first subgraph."""
    from ai_edge_litert.tools import flatbuffer_utils
    model = read_model(path)
    return [(flatbuffer_utils.opcode_to_name(model, op.opcodeIndex),
             model.operatorCodes[op.opcodeIndex].version)
            for op in model.subgraphs[0].operators]


def signature_op_counts(path, signature):
    """{op name: count} of the subgraph behind signature `signature` (e.g. "decode")."""
    import collections
    from ai_edge_litert.tools import flatbuffer_utils
    model = read_model(path)
    keys = {(d.signatureKey.decode() if isinstance(d.signatureKey, bytes) else d.signatureKey):
            d.subgraphIndex for d in model.signatureDefs}
    graph = model.subgraphs[keys[signature]]
    return dict(sorted(collections.Counter(
        flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in graph.operators).items()))


def float_op_types(path):
    """{op name: count} of the ops that compute in float (their first output is
    FLOAT32), QUANTIZE and DEQUANTIZE aside: what a mixed-precision file keeps wide."""
    import collections
    from ai_edge_litert.tools import flatbuffer_utils
    model = read_model(path)
    graph = model.subgraphs[0]
    counts = collections.Counter()
    for op in graph.operators:
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        outputs = [i for i in op.outputs if i >= 0]
        if name in ("QUANTIZE", "DEQUANTIZE") or not outputs:
            continue
        if graph.tensors[outputs[0]].type == 0:  # TensorType.FLOAT32
            counts[name] += 1
    return dict(sorted(counts.items()))


def weight_tensors(path):
    """Every constant tensor of rank >= 2 in the first subgraph."""
    model = read_model(path)
    out = []
    for tensor in model.subgraphs[0].tensors:
        buffer = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
        shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
        if (buffer is None or len(buffer) == 0 or len(shape) < 2
                or tensor.type not in _DTYPES and tensor.type != INT4):
            continue
        if tensor.sparsity is not None:
            # Stored sparse (float32_sparse: a DENSIFY op makes the dense
            # kernel at load time); its buffer holds only the nonzero values.
            continue
        raw = np.asarray(buffer, dtype=np.uint8).tobytes()
        if tensor.type == INT4:
            dtype, values = "int4", unpack_int4(raw, int(np.prod(shape)))
        else:
            dtype = np.dtype(_DTYPES[tensor.type]).name
            values = np.frombuffer(raw, dtype=dtype)
        q = tensor.quantization
        scale = None if q is None or q.scale is None else np.asarray(q.scale)
        block_size = 0
        if q is not None and q.detailsType == BLOCKWISE:
            block_size = int(q.details.blockSize)
            scale = _constant(model, model.subgraphs[0].tensors[q.details.scales])
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else (tensor.name or "")
        out.append(WeightTensor(
            name=name, dtype=dtype, shape=shape, values=values.reshape(shape), scale=scale,
            quantized_dimension=int(q.quantizedDimension) if q is not None else 0,
            block_size=block_size))
    return out


def _constant(model, tensor):
    """A constant float tensor's values, shaped."""
    raw = np.asarray(model.buffers[tensor.buffer].data, dtype=np.uint8).tobytes()
    return np.frombuffer(raw, dtype=_DTYPES[tensor.type]).reshape(
        [int(d) for d in tensor.shape])


def kernel_stats(values, axis=0):
    """Sparsity and unique-value counts of one kernel.

    Args:
      values: the stored kernel (TFLite puts output channels on axis 0).
      axis: the output-channel axis.
    Returns:
      {"size", "sparsity" (fraction of exact zeros), "unique" (distinct values
      in the whole tensor), "max_unique_per_channel", "entropy_bits"}.
    """
    values = np.asarray(values)
    channels = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return {
        "size": int(values.size),
        "sparsity": float(np.mean(values == 0)),
        "unique": int(counts.size),
        "max_unique_per_channel": int(max(np.unique(c).size for c in channels)),
        # Shannon entropy of the stored values: the bits per weight an ideal
        # entropy coder would need (what gzip approaches).
        "entropy_bits": float(-(p * np.log2(p)).sum()),
    }


def kernels_by_layer(path, layer_names):
    """Maps Keras layer names to the kernel tensor the converter made of each.

    TFLite names a kernel after the op that reads it, e.g.
    `digits_cnn/dense1/MatMul`; QAT models prefix layers with `quant_`.
    Layers whose kernel cannot be found (folded away, renamed) are left out.
    """
    tensors = weight_tensors(path)
    found = {}
    for layer in layer_names:
        pattern = re.compile(rf"(^|/)(quant_)?{re.escape(layer)}/")
        matches = [t for t in tensors if pattern.search(t.name.split(";")[0])]
        if matches:
            found[layer] = max(matches, key=lambda t: t.values.size)
    return found


def strip(flatbuffer):
    """`flatbuffer` without what the interpreter does not read: the model
    description, subgraph and tensor names, signature defs
    (ai_edge_litert's `strip_strings`), and the empty quantization tables
    the converter attaches to float tensors. The same ops, tensors and
    weights: the interpreter computes the same outputs, addressed by index.
    """
    from ai_edge_litert.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    flatbuffer_utils.strip_strings(model)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            if _empty(tensor.quantization):
                tensor.quantization = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _empty(quantization):
    return quantization is not None and not any(
        getattr(quantization, field) is not None and len(getattr(quantization, field))
        for field in ("min", "max", "scale", "zeroPoint")) and quantization.details is None
