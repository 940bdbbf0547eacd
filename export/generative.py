"""A causal language model as LiteRT-LM runs it: `prefill_<T>` and `decode` over an external KV cache.

A Keras causal LM scores a fixed window: every call recomputes every
position. Generation feeds one token at a time and keeps each attention
layer's keys and values from the tokens before it (the KV cache). This
module re-expresses a tf_keras model, from its own weights, as that cached
forward, in the form LiteRT-LM's runtime expects of a `.litertlm` bundle's
model (LiteRT-LM's executor reads these names):

- signatures `prefill_<T>` (one per prompt chunk length) and `decode` (T = 1);
- inputs `tokens` [1, T] int32, `input_pos` [T] int32 (the positions of those
  tokens), and per attention layer i `kv_cache_k_<i>`, `kv_cache_v_<i>`;
- outputs the updated caches under the same names, and `logits` [1, T, vocabulary];
- cache layout [1, heads, context, head_dim]: the runtime reads the context
  length from dimension 2.

Activations are carried as [T, width] matrices so that every projection
lowers to FULLY_CONNECTED, which XNNPACK runs in int8 for dynamic-range and
int4 files (a [1, T, width] tensordot becomes BATCH_MATMUL, a reference
kernel in int8 on x86: why the window model's int8 file was 5x slower per
token than float32). The cache is written with DYNAMIC_UPDATE_SLICE at
input_pos[0] (positions of one call are consecutive), which decoded 2-3x
faster than a one-hot update in the probe of issue 32.

What it can express: tokens -> Embedding or models.tiny_transformer's
OneHotEmbedding, PositionEmbedding, LayerNormalization, Dense, Conv1D with
kernel size 1, MultiHeadAttention (greenlite's BoundedMaskAttention
included) called as causal self-attention, Add, Multiply, Activation,
Dropout; the last layer's output is the logits. Any other layer is refused
with its name (`UnsupportedLayer`).

    >>> import numpy as np
    >>> from export import generative
    >>> from models import tiny_transformer
    >>> model = tiny_transformer.build((16,), 256, width=32, heads=2, layers=1, mlp_width=32)
    >>> lm = generative.CachedLM(model)
    >>> (lm.context, lm.vocabulary, lm.heads, lm.head_dim, len(lm.attention_layers))
    (16, 256, 2, 16, 1)
    >>> window = np.arange(16, dtype=np.int32)[None] % 7
    >>> bool(np.allclose(lm.window_logits(window), model(window).numpy(), atol=1e-4))
    True
"""
import math
import os

import numpy as np

from pipeline.backend import keras, tf
from pipeline.errors import ExportError

PREFILL_PREFIX = "prefill_"
DECODE = "decode"


class UnsupportedLayer(ExportError):
    """The model holds a layer the cached forward cannot express."""


def cache_names(layers):
    """The cache tensor names of `layers` attention layers, in signature order."""
    return [f"kv_cache_{kind}_{i}" for i in range(layers) for kind in ("k", "v")]


class CachedLM(tf.Module):
    """`model`'s forward pass over an external KV cache, from `model`'s own weights.

    Args:
      model: a tf_keras functional causal LM (module doc lists its layers):
        input [batch, L] int token ids, output [batch, L, vocabulary].
      context: the cache length (default L; a learned position table of L
        rows allows no more).

    Raises:
      UnsupportedLayer: naming the first layer it cannot express.
    """

    def __init__(self, model, context=None):
        super().__init__(name="cached_lm")
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise UnsupportedLayer(f"{model.name}: a generative export needs one input (token "
                                   f"ids) and one output (logits); the model has "
                                   f"{len(model.inputs)} and {len(model.outputs)}")
        if not model.inputs[0].dtype.is_integer or len(model.inputs[0].shape) != 2:
            raise UnsupportedLayer(f"{model.name}: a generative export needs an input of token "
                                   f"ids [batch, length]; got {model.inputs[0].dtype.name} "
                                   f"{tuple(model.inputs[0].shape)}: a classifier or an image "
                                   "model is not a language model")
        self.window = int(model.inputs[0].shape[1])
        self.vocabulary = int(model.outputs[0].shape[-1])
        self.steps = _plan(model)
        # Layers called as they are (layer norms): tracked, so that a SavedModel
        # of the signatures holds their weights.
        self.called_layers = [s.layer for s in self.steps
                              if isinstance(s.layer, keras.layers.LayerNormalization)]
        self.attention_layers = [s for s in self.steps if s.kind == "attention"]
        if not self.attention_layers:
            raise UnsupportedLayer(f"{model.name}: no causal self-attention layer: nothing to "
                                   "cache")
        first = self.attention_layers[0]
        self.heads, self.head_dim = first.heads, first.head_dim
        positional = [s for s in self.steps if s.kind == "position"]
        limit = min([s.rows for s in positional], default=None)
        self.context = int(context or limit or self.window)
        if limit is not None and self.context > limit:
            raise ExportError(f"context {self.context} is longer than the model's learned "
                              f"position table ({limit} positions)")
        self.model_name = model.name

    def cache_shape(self, step=None):
        """[1, heads, context, head_dim] of attention layer `step` (the first by default)."""
        step = step or self.attention_layers[0]
        return (1, step.heads, self.context, step.head_dim)

    def empty_cache(self):
        """{name: zeros} for every cache input."""
        return {name: np.zeros(self.cache_shape(step), np.float32)
                for step in self.attention_layers
                for name in (step.k_name, step.v_name)}

    def forward(self, tokens, input_pos, cache):
        """(logits [1, T, vocabulary], {name: updated cache}) for `tokens` [1, T] at
        positions `input_pos` [T] (consecutive), given `cache` {name: tensor}."""
        values = {}
        updated = {}
        for step in self.steps:
            args = [values[i] for i in step.inputs]
            if step.kind == "input":
                out = tf.reshape(tokens, [-1])
            elif step.kind == "attention":
                out, k, v = step.call(args[0], input_pos, cache[step.k_name],
                                      cache[step.v_name], self.context)
                updated[step.k_name], updated[step.v_name] = k, v
            elif step.kind == "position":
                out = step.call(args[0], input_pos)
            else:
                out = step.call(*args)
            values[step.output] = out
        logits = values[self.steps[-1].output]
        return logits[tf.newaxis], updated

    def window_logits(self, window):
        """Logits of a [1, L] window computed through the cache (prefill from position 0):
        equals the Keras model's output where the cached forward is right."""
        window = np.asarray(window, np.int32)
        logits, _ = self.forward(tf.constant(window), tf.range(window.shape[1], dtype=tf.int32),
                                 {k: tf.constant(v) for k, v in self.empty_cache().items()})
        return logits.numpy()

    def signature_functions(self, prefill_lengths):
        """{signature key: concrete function} for `prefill_<T>` (each T) and `decode`."""
        names = [n for s in self.attention_layers for n in (s.k_name, s.v_name)]
        shapes = {n: self.cache_shape(s) for s in self.attention_layers
                  for n in (s.k_name, s.v_name)}
        functions = {}
        for key, length in ([(f"{PREFILL_PREFIX}{t}", t) for t in prefill_lengths]
                            + [(DECODE, 1)]):
            spec = {"tokens": tf.TensorSpec([1, length], tf.int32, name="tokens"),
                    "input_pos": tf.TensorSpec([length], tf.int32, name="input_pos"),
                    **{n: tf.TensorSpec(shapes[n], tf.float32, name=n) for n in names}}
            functions[key] = tf.function(self._signature(key == DECODE),
                                         input_signature=[spec]).get_concrete_function()
        return functions

    def _signature(self, with_logits):
        def run(inputs):
            logits, updated = self.forward(inputs["tokens"], inputs["input_pos"], inputs)
            # The runtime reads decode's logits; prefill's would be computed for nothing.
            return {**updated, **({"logits": logits} if with_logits else {})}
        return run


# ---------------------------------------------------------------------------
# The plan: one step per layer of the model, in graph order.

class _Step:
    """One layer of the cached forward: its kind, inputs (tensor ids) and call."""

    def __init__(self, kind, layer, inputs, output, call=None):
        self.kind, self.layer, self.inputs, self.output, self.call = (
            kind, layer, inputs, output, call)


def _plan(model):
    from models.tiny_transformer import OneHotEmbedding, PositionEmbedding, one_hot_by_comparison

    steps, attention_index = [], 0
    for layer in model.layers:
        nodes = [n for n in layer._inbound_nodes if n in _model_nodes(model)]
        if len(nodes) != 1:
            raise UnsupportedLayer(f"layer {layer.name!r} is called {len(nodes)} times; a "
                                   "generative export needs each layer called once")
        node = nodes[0]
        inputs = [id(t) for t in node.keras_inputs]
        output = id(tf.nest.flatten(node.outputs)[0])
        if isinstance(layer, keras.layers.InputLayer):
            steps.append(_Step("input", layer, [], output))
            continue
        if isinstance(layer, keras.layers.MultiHeadAttention):
            step = _attention_step(layer, node, inputs, output, attention_index)
            attention_index += 1
        elif isinstance(layer, PositionEmbedding):
            step = _Step("position", layer, inputs, output,
                         _position(layer, one_hot_by_comparison))
            step.rows = int(layer.positions.shape[0])
        elif isinstance(layer, OneHotEmbedding):
            step = _Step("layer", layer, inputs, output, _one_hot_embedding(
                layer, one_hot_by_comparison))
        elif isinstance(layer, keras.layers.Embedding):
            table = tf.constant(layer.embeddings.numpy())
            step = _Step("layer", layer, inputs, output, lambda ids, t=table: tf.gather(t, ids))
        elif isinstance(layer, keras.layers.LayerNormalization):
            step = _Step("layer", layer, inputs, output, _layer_norm(layer))
        elif isinstance(layer, (keras.layers.Dense, keras.layers.Conv1D)):
            step = _Step("layer", layer, inputs, output, _projection(layer))
        elif isinstance(layer, (keras.layers.Add, keras.layers.Multiply)):
            combine = tf.add_n if isinstance(layer, keras.layers.Add) else _product
            step = _Step("layer", layer, inputs, output, lambda *xs, c=combine: c(list(xs)))
        elif isinstance(layer, keras.layers.Activation):
            step = _Step("layer", layer, inputs, output, layer.activation)
        elif isinstance(layer, keras.layers.Dropout):
            step = _Step("layer", layer, inputs, output, lambda x: x)
        else:
            raise UnsupportedLayer(
                f"layer {layer.name!r} ({type(layer).__name__}) has no cached form; a generative "
                "export supports Embedding, PositionEmbedding, LayerNormalization, Dense, "
                "Conv1D (kernel size 1), MultiHeadAttention (causal self-attention), Add, "
                "Multiply, Activation and Dropout")
        steps.append(step)
    if steps[-1].output != id(tf.nest.flatten(model.outputs)[0]):
        raise UnsupportedLayer(f"{model.name}: the last layer is not the model's output")
    return steps


def _model_nodes(model):
    if not hasattr(model, "_greenlite_nodes"):
        model._greenlite_nodes = {n for nodes in model._nodes_by_depth.values() for n in nodes}
    return model._greenlite_nodes


def _product(xs):
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def _position(layer, one_hot):
    table = tf.constant(layer.positions.numpy())
    if layer.as_matmul:
        # As the Keras layer does: a FULLY_CONNECTED over one-hot positions keeps
        # the table a quantizable weight instead of a float32 gather table.
        return lambda x, pos: x + _one_hot_product(one_hot(pos, table.shape[0], x.dtype), table)
    return lambda x, pos: x + tf.gather(table, pos)


def _one_hot_embedding(layer, one_hot):
    table = tf.constant(layer.embeddings.numpy())
    return lambda ids: _one_hot_product(one_hot(ids, table.shape[0], table.dtype), table)


def _one_hot_product(one_hot, table):
    """one_hot [T, rows] @ table [rows, width], written as the window model writes it
    (a tensordot over a [1, T, rows] tensor). A plain 2-D matmul of a one-hot the
    converter rewrites into a table lookup stored [rows, width], which
    ai-edge-quantizer blocks along the width: int4_aware trained its blocks
    along the rows, and its twin lost the grid (KL 0.14 against 0.0005 for the
    window file)."""
    return tf.tensordot(one_hot[tf.newaxis], table, [[2], [0]])[0]


def _layer_norm(layer):
    rank = len(layer.input_spec.shape) if getattr(layer, "input_spec", None) else None
    axes = [a if a >= 0 else a + (rank or 3) for a in layer.axis]
    if rank is not None and axes != [rank - 1]:
        raise UnsupportedLayer(f"layer {layer.name!r}: LayerNormalization over axes "
                               f"{layer.axis}; only the last (feature) axis has a cached form")
    # The Keras layer itself on a [1, T, width] view: the converter then lowers it
    # as it lowers the window model. Written out as (x - mean) * rsqrt * gamma, its
    # gamma was folded into the next FULLY_CONNECTED's weights, which moved them off
    # the int4 grid int4_aware trained (the twin's KL was 100x the window file's).
    return lambda x: layer(x[tf.newaxis], training=False)[0]


def _projection(layer):
    kernel = layer.kernel.numpy()
    if isinstance(layer, keras.layers.Conv1D):
        if kernel.shape[0] != 1 or tuple(layer.strides) != (1,) or tuple(layer.dilation_rate) != (1,):
            raise UnsupportedLayer(f"layer {layer.name!r}: Conv1D with kernel size "
                                   f"{kernel.shape[0]}; only kernel size 1 (a position-wise "
                                   "projection) has a cached form")
        kernel = kernel[0]
    kernel = tf.constant(kernel)
    bias = tf.constant(layer.bias.numpy()) if layer.use_bias else None
    activation = layer.activation

    def project(x):
        y = tf.matmul(x, kernel)
        return activation(y + bias if bias is not None else y)
    return project


def _attention_step(layer, node, inputs, output, index):
    kwargs = node.call_kwargs
    args = list(node.call_args)
    query = args[0] if args else kwargs.get("query")
    value = args[1] if len(args) > 1 else kwargs.get("value")
    key = args[2] if len(args) > 2 else kwargs.get("key")
    if value is not query or (key is not None and key is not query):
        raise UnsupportedLayer(f"layer {layer.name!r}: attention over another sequence; only "
                               "self-attention (query = value = key) has a cached form")
    if not kwargs.get("use_causal_mask") or kwargs.get("attention_mask") is not None:
        raise UnsupportedLayer(f"layer {layer.name!r}: not causal (use_causal_mask=True "
                               "without attention_mask): a model that sees later tokens "
                               "cannot generate")
    if tuple(layer._attention_axes) != (1,):
        raise UnsupportedLayer(f"layer {layer.name!r}: attention over axes "
                               f"{layer._attention_axes}; only the sequence axis")
    step = _Step("attention", layer, inputs[:1], output)
    step.heads, step.head_dim = int(layer._num_heads), int(layer._key_dim)
    value_dim = int(layer._value_dim or layer._key_dim)
    if value_dim != step.head_dim:
        raise UnsupportedLayer(f"layer {layer.name!r}: value_dim {value_dim} differs from "
                               f"key_dim {step.head_dim}; the cache layout holds one head width")
    step.k_name, step.v_name = f"kv_cache_k_{index}", f"kv_cache_v_{index}"
    # The mask the layer adds at future positions: greenlite's bounded one, or
    # tf_keras' -1e9 (its softmax adds -1e9 where the mask is 0).
    mask_value = float(getattr(layer, "mask_value", -1e9))
    step.call = _cached_attention(layer, step.heads, step.head_dim, mask_value)
    return step


def _cached_attention(layer, heads, head_dim, mask_value):
    def dense(einsum):
        kernel = einsum.kernel.numpy()
        bias = einsum.bias.numpy() if einsum.bias is not None else None
        return kernel, bias

    (qk, qb), (kk, kb), (vk, vb) = (dense(layer._query_dense), dense(layer._key_dense),
                                    dense(layer._value_dense))
    ok, ob = dense(layer._output_dense)
    width = qk.shape[0]

    def flat(kernel, bias):
        # [width, heads, head_dim] -> [width, heads * head_dim]: one FULLY_CONNECTED.
        return (tf.constant(kernel.reshape(width, heads * head_dim)),
                None if bias is None else tf.constant(bias.reshape(heads * head_dim)))
    q_w, k_w, v_w = flat(qk, qb), flat(kk, kb), flat(vk, vb)
    o_w = tf.constant(ok.reshape(heads * head_dim, ok.shape[-1]))
    o_b = None if ob is None else tf.constant(ob)
    scale = 1.0 / math.sqrt(float(head_dim))

    def project(x, weights):
        y = tf.matmul(x, weights[0])
        y = y if weights[1] is None else y + weights[1]
        # [T, heads * head_dim] -> [1, heads, T, head_dim], the cache's layout.
        return tf.transpose(tf.reshape(y, [1, -1, heads, head_dim]), [0, 2, 1, 3])

    def call(x, input_pos, k_cache, v_cache, context):
        q = project(x, q_w) * scale
        start = [0, 0, input_pos[0], 0]
        k_cache = dynamic_update_slice(k_cache, project(x, k_w), start)
        v_cache = dynamic_update_slice(v_cache, project(x, v_w), start)
        scores = tf.matmul(q, k_cache, transpose_b=True)  # [1, heads, T, context]
        visible = tf.range(context, dtype=input_pos.dtype)[tf.newaxis, :] <= input_pos[:, tf.newaxis]
        scores += (1.0 - tf.cast(visible, scores.dtype)) * mask_value
        weights = tf.nn.softmax(scores, axis=-1)
        attended = tf.matmul(weights, v_cache)  # [1, heads, T, head_dim]
        merged = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [-1, heads * head_dim])
        out = tf.matmul(merged, o_w)
        return (out if o_b is None else out + o_b), k_cache, v_cache
    return call


def dynamic_update_slice(tensor, update, start):
    """`tensor` with `update` written at `start` (TFLite's DYNAMIC_UPDATE_SLICE)."""
    from tensorflow.compiler.tf2xla.python import xla
    return xla.dynamic_update_slice(tensor, update, tf.stack(start))


# ---------------------------------------------------------------------------
# Files: the cached forward converted in each format that has a generative twin.

# Window formats whose generative twin greenlite writes, with how it is made.
# Full int8 and int16x8 are absent: their calibrated activations would put
# the KV cache itself in integers, which LiteRT-LM's CPU executor does not
# feed (it allocates float caches from the signature).
TWIN_OF = {"float32": "float32", "dynamic_range": "dynamic_range",
           "int4_weights": "int4_weights", "int4_dynamic": "int4_dynamic",
           "int4_blockwise": "int4_blockwise"}


def convert(lm, fmt, prefill_lengths, workdir):
    """The generative TFLite flatbuffer of `lm` (a CachedLM) in format `fmt`.

    float32 and dynamic_range come from the TFLite converter on a SavedModel
    holding every signature (one subgraph each, weights shared); the int4
    formats are ai-edge-quantizer on the float32 file, as for window files.
    """
    from export import convert as convert_lib
    if fmt not in TWIN_OF:
        raise ExportError(f"{fmt}: no generative twin; formats with one: {', '.join(TWIN_OF)}")
    saved = os.path.join(workdir, "generative_saved_model")
    if not os.path.isdir(saved):
        tf.saved_model.save(lm, saved, signatures=lm.signature_functions(prefill_lengths))
    base = "dynamic_range" if fmt == "dynamic_range" else "float32"
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved, signature_keys=[f"{PREFILL_PREFIX}{t}" for t in prefill_lengths] + [DECODE])
    if base == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        flatbuffer = converter.convert()
    except Exception as e:  # the converter raises ConverterError and friends
        raise ExportError(f"{fmt}: the TFLite converter failed on the generative model: "
                          f"{str(e).strip().splitlines()[0]}") from None
    if fmt in ("float32", "dynamic_range"):
        return flatbuffer
    return convert_lib.ai_edge_quantize(flatbuffer, fmt)


class SignatureRunner:
    """Runs a generative TFLite file's prefill/decode signatures in ai_edge_litert,
    keeping the cache between calls: the reference LiteRT-LM is checked against."""

    def __init__(self, path_or_bytes, threads=1):
        from ai_edge_litert.interpreter import Interpreter
        kwargs = ({"model_content": bytes(path_or_bytes)}
                  if isinstance(path_or_bytes, (bytes, bytearray)) else
                  {"model_path": path_or_bytes})
        self.interpreter = Interpreter(num_threads=threads, **kwargs)
        signatures = self.interpreter.get_signature_list()
        if DECODE not in signatures:
            raise ExportError("not a generative file: no 'decode' signature")
        self.prefill_lengths = sorted(int(k[len(PREFILL_PREFIX):]) for k in signatures
                                      if k.startswith(PREFILL_PREFIX))
        self.decode = self.interpreter.get_signature_runner(DECODE)
        details = self.decode.get_input_details()
        self.cache_names = sorted(n for n in details if n.startswith("kv_cache_"))
        self.context = int(details[self.cache_names[0]]["shape"][2])
        self.reset()

    def reset(self):
        details = self.decode.get_input_details()
        self.cache = {n: np.zeros(details[n]["shape"], np.float32) for n in self.cache_names}
        self.position = 0

    def feed(self, tokens):
        """Feeds `tokens` at the next positions; returns the logits [vocabulary] after
        the last one (prefill chunks where a length fits, then decode steps)."""
        tokens = list(tokens)
        if self.position + len(tokens) > self.context:
            raise ExportError(f"{self.position + len(tokens)} tokens do not fit the context "
                              f"of {self.context}")
        # Chunks through the longest prefill that fits, the last token by decode
        # (decode's logits are the ones read).
        while len(tokens) > 1:
            fits = [t for t in self.prefill_lengths if t <= len(tokens) - 1]
            if not fits:
                break
            chunk, tokens = tokens[:fits[-1]], tokens[fits[-1]:]
            self._run(self.interpreter.get_signature_runner(f"{PREFILL_PREFIX}{len(chunk)}"),
                      chunk)
        logits = None
        for token in tokens:
            logits = self._run(self.decode, [token])["logits"][0, -1]
        return logits

    def _run(self, runner, tokens):
        positions = np.arange(self.position, self.position + len(tokens), dtype=np.int32)
        out = runner(tokens=np.asarray([tokens], np.int32), input_pos=positions, **self.cache)
        self.cache = {n: out[n] for n in self.cache_names}
        self.position += len(tokens)
        return out

    def greedy(self, prompt, count):
        """`count` greedy tokens after `prompt` (a fresh cache)."""
        self.reset()
        logits, generated = self.feed(prompt), []
        for _ in range(count):
            generated.append(int(np.argmax(logits)))
            if len(generated) == count:
                break
            logits = self.feed([generated[-1]])
        return generated


def keras_greedy(model, prompt, count):
    """`count` greedy tokens after `prompt` from the Keras window model (each step runs
    the whole window, zero-padded after the text: causal, so the padding is not seen)."""
    window = int(model.inputs[0].shape[1])
    tokens = list(prompt)
    if len(tokens) + count - 1 > window:
        raise ExportError(f"{len(tokens)} prompt tokens + {count} generated exceed the "
                          f"model's window of {window}")
    for _ in range(count):
        tokens.append(int(np.argmax(keras_next_logits(model, tokens))))
    return tokens[len(prompt):]


def keras_next_logits(model, tokens):
    """The Keras window model's next-token logits after `tokens` (the window
    zero-padded after them: causal, so the padding is not seen)."""
    window = int(model.inputs[0].shape[1])
    padded = np.zeros((1, window), np.int32)
    padded[0, :len(tokens)] = tokens
    return model(padded, training=False).numpy()[0, len(tokens) - 1]
