"""Does a model output probabilities or logits? One answer, read from its graph.

Losses, distillation and every scorer must agree on this, and a layer
attribute cannot tell: tfmot's pruning, clustering and QAT wrappers hide the
last layer's `activation`, a functional shell hides the model inside it, and a
softmax may be a `Dense(activation="softmax")`, an `Activation`, a `Softmax`
layer or a `tf.nn.softmax` call. So the model is traced once and the op that
produces its (first) output is looked up, through the identity-like ops Keras
and QAT put after it. The TFLite side does the same on the converted graph
(export/benchmark.py: the SOFTMAX op).
"""
import weakref

# Ops that pass a value through unchanged in meaning: a softmax behind one of
# these still gives probabilities.
_PASS_THROUGH = {"Identity", "IdentityN", "StopGradient", "Cast", "Reshape", "Squeeze",
                 "ExpandDims", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel",
                 "FakeQuantWithMinMaxArgs"}
_PROBABILITY_OPS = {"Softmax"}

_CACHE = weakref.WeakKeyDictionary()


def output_op(model):
    """The type of the TensorFlow op that produces the model's first output
    (after skipping identity-like ops), e.g. 'Softmax' or 'BiasAdd'."""
    from pipeline.backend import tf
    specs = [tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype) for t in model.inputs]
    function = tf.function(lambda *x: model(x[0] if len(x) == 1 else list(x), training=False))
    concrete = function.get_concrete_function(*specs)
    tensor = tf.nest.flatten(concrete.structured_outputs)[0]
    while tensor.op.type in _PASS_THROUGH and tensor.op.inputs:
        index = tensor.value_index if tensor.op.type == "IdentityN" else 0
        tensor = tensor.op.inputs[index]
    return tensor.op.type


def outputs_probabilities(model):
    """True when `model` ends in a softmax (probabilities), False for logits.

    Works through tfmot's wrappers, QAT's fake-quant ops and functional
    shells around subclassed models. Cached per model object.
    """
    try:
        return _CACHE[model]
    except (KeyError, TypeError):
        pass
    decide = getattr(model, "outputs_probabilities", None)  # a model whose graph hides it
    answer = decide() if callable(decide) else output_op(model) in _PROBABILITY_OPS
    try:
        _CACHE[model] = answer
    except TypeError:
        pass
    return answer
