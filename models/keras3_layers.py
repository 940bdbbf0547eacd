"""Layer by layer, Keras 3 <-> tf_keras: configs, activations and ops, as tables.

Keras 3 and tf_keras (Keras 2) share most layer classes and most of their
settings, but not all of them, and not always with the same meaning:

- a Keras 3 config wraps every dtype policy, initializer, regularizer and
  constraint in `{module, class_name, config, registered_name}`;
- some settings were renamed (`LeakyReLU(negative_slope)` was `alpha`) or
  are new in Keras 3 (`lora_rank`, `quantization_config`, `rms_scaling`,
  `flash_attention`, ...), and tf_keras has some Keras 3 dropped (BatchNorm's
  `renorm`, `fused`, ...); each is translated only at the value that means
  the same on both sides, and refused otherwise;
- activations of the same name can differ: Keras 3's `hard_sigmoid` is
  relu6(x + 3) / 6, tf_keras' is clip(0.2 x + 0.5, 0, 1); `leaky_relu`'s
  default slope is 0.2 in Keras 3; `relu6`, `hard_silu` and `log_softmax`
  are not tf_keras activations at all. Those become the layers tf_keras'
  own keras.applications build them from (ReLU(6), Multiply, TFOpLambda),
  which tfmot's QAT and the TFLite converter know;
- Keras 3 ops called on symbolic tensors (`x + 3.0`, `keras.ops.mean`)
  are graph nodes of their own; tf_keras makes a TFOpLambda layer of the
  TensorFlow function with the same meaning.

`UntranslatableError` names what has no twin and why; the caller collects
every one before refusing. The numeric check in models/keras3.py is the
last word on whether a translation holds.
"""
import inspect

from pipeline.errors import ModelError


class UntranslatableError(ModelError):
    """A layer, op or setting with no equivalent on the other side (the message says why)."""


# Keras 3 activation names tf_keras computes identically under the name given.
SAME_ACTIVATIONS = {"linear": "linear", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
                    "softmax": "softmax", "elu": "elu", "selu": "selu", "softplus": "softplus",
                    "softsign": "softsign", "exponential": "exponential", "gelu": "gelu",
                    "mish": "mish", "silu": "swish", "swish": "swish"}
# And back: tf_keras activation names Keras 3 computes identically.
SAME_ACTIVATIONS_BACK = {v: k for k, v in SAME_ACTIVATIONS.items() if k != "swish"}

# Settings each side may hold only at the value given (the value that means
# the same as having no such setting on the other side); any other value is
# refused. None as the value: the setting is dropped whatever it holds,
# because it changes nothing a trained model computes (seeds of initializers
# and dropout masks).
KERAS3_ONLY = {"lora_rank": (None,), "lora_alpha": "any-if-no-lora", "quantization_config": (None,),
               "rms_scaling": (False,), "flash_attention": (None, False), "optional": (False,),
               "pad_to_aspect_ratio": (False,), "fill_mode": ("constant",), "fill_value": (0.0, 0),
               "antialias": (False,), "synchronized": (False,), "seed": "any", "use_gate": (False,), "sliding_window": (None,),
               "data_format": ("channels_last",)}
# Keras 3's variance-scaling initializers may fan over chosen axes.
INITIALIZER_KERAS3_ONLY = {"input_axes": (None,), "output_axes": (None,)}
TF_KERAS_ONLY = {"renorm": (False,), "renorm_clipping": (None,), "renorm_momentum": "any",
                 "fused": "any", "virtual_batch_size": (None,), "adjustment": (None,),
                 "dynamic": (False,), "batch_input_shape": "any", "input_shape": "any",
                 "input_length": "any"}
# The same, for one class only (other classes have the setting on both sides).
TF_KERAS_ONLY_BY_CLASS = {"DepthwiseConv2D": {"groups": (1,)}, "DepthwiseConv1D": {"groups": (1,)}}
# Settings Keras 3 holds as one integer where tf_keras keeps a list of one.
KERAS3_SCALAR = {"BatchNormalization": ("axis",)}
# Renamed settings: {layer class: {Keras 3 name: tf_keras name}}.
RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}
# Settings tf_keras requires that Keras 3 keeps elsewhere (MultiHeadAttention
# builds from its shapes at the first call when they are None).
TF_KERAS_REQUIRED = {"MultiHeadAttention": {"query_shape": None, "key_shape": None,
                                            "value_shape": None}}
# Layers whose meaning does not survive translation (their own reason).
REFUSED = {"TFSMLayer": "it wraps a SavedModel, which has no layer graph to translate",
           "Lambda": "it holds Python code written against Keras 3 (keras.ops), which tf_keras "
                     "cannot run; rewrite it as a layer with a tf_keras twin"}


def refusal(error):
    """The part of a Keras deserialization error that says what was refused (not the config)."""
    text = " ".join(str(error).split())
    marker = "Exception encountered: "
    return (text[text.index(marker) + len(marker):] if marker in text else text)[:200]


def plain(value):
    """A Keras 3 config value with every `{module, class_name, config, registered_name}`
    object reduced to what tf_keras reads (`{class_name, config}`; a dtype policy to its name)."""
    if isinstance(value, dict):
        if "class_name" in value and "config" in value and (
                "module" in value or "registered_name" in value):
            if value["class_name"] in ("DTypePolicy", "FloatDTypePolicy"):
                return value["config"]["name"]
            name = value.get("registered_name") or value["class_name"]
            if name and ">" not in name:
                name = value["class_name"]
            config = plain(value["config"])
            if value.get("module") == "keras.initializers":
                _drop(config, INITIALIZER_KERAS3_ONLY, name, "tf_keras")
            return {"class_name": name, "config": config}
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def _drop(config, allowed, cls_name, direction):
    """Removes the settings the other side lacks, refusing any at a value that matters."""
    for key in [k for k in config if k in allowed]:
        rule, value = allowed[key], config[key]
        if rule == "any":
            del config[key]
        elif rule == "any-if-no-lora":
            if config.get("lora_rank") not in (None, 0):
                raise UntranslatableError(f"{cls_name} uses LoRA (lora_rank "
                                          f"{config['lora_rank']}), which {direction} has not")
            del config[key]
        elif value in rule:
            del config[key]
        else:
            raise UntranslatableError(f"{cls_name} has {key}={value!r}, which {direction} "
                                      f"cannot hold (only {rule[0]!r} translates)")


def tf_keras_config(layer):
    """The config a tf_keras twin of Keras 3 `layer` is built from, and the activation
    (a Keras 3 name) to apply after it when tf_keras cannot hold it in the layer."""
    cls_name = type(layer).__name__
    config = plain(layer.get_config())
    config.pop("build_config", None)
    for old, new in RENAMED.get(cls_name, {}).items():
        if old in config:
            config[new] = config.pop(old)
    _drop(config, KERAS3_ONLY, cls_name, "tf_keras")
    for key, value in TF_KERAS_REQUIRED.get(cls_name, {}).items():
        config.setdefault(key, value)
    after = None
    activation = config.get("activation")
    if isinstance(activation, str):
        if activation in SAME_ACTIVATIONS:
            config["activation"] = SAME_ACTIVATIONS[activation]
        elif activation in COMPOSED:
            config["activation"], after = "linear", activation
        else:
            raise UntranslatableError(f"{cls_name} uses activation {activation!r}, which has no "
                                      f"tf_keras twin here (known: "
                                      f"{', '.join(sorted(set(SAME_ACTIVATIONS) | set(COMPOSED)))})")
    elif activation is not None:
        raise UntranslatableError(f"{cls_name} uses a custom activation {activation!r}")
    return config, after


def keras3_config(layer):
    """The config a Keras 3 twin of tf_keras `layer` is built from."""
    cls_name = type(layer).__name__
    config = _lists(layer.get_config())
    for new, old in RENAMED.get(cls_name, {}).items():  # old: the tf_keras name
        if old in config:
            config[new] = config.pop(old)
    _drop(config, TF_KERAS_ONLY, cls_name, "Keras 3")
    _drop(config, TF_KERAS_ONLY_BY_CLASS.get(cls_name, {}), cls_name, "Keras 3")
    for key in KERAS3_SCALAR.get(cls_name, ()):
        if isinstance(config.get(key), list) and len(config[key]) == 1:
            config[key] = config[key][0]
    # Keras 3 layer names cannot hold '/', which tf_keras' DenseNet uses ('conv1/bn').
    config["name"] = keras3_name(config["name"])
    for key in TF_KERAS_REQUIRED.get(cls_name, {}):
        config.pop(key, None)
    activation = config.get("activation")
    if isinstance(activation, str):
        if activation not in SAME_ACTIVATIONS_BACK:
            raise UntranslatableError(f"{cls_name} uses tf_keras activation {activation!r}, which "
                                      "Keras 3 computes differently or lacks")
        config["activation"] = SAME_ACTIVATIONS_BACK[activation]
    elif activation is not None:
        raise UntranslatableError(f"{cls_name} uses a custom activation {activation!r}")
    return config


def keras3_name(name):
    """A tf_keras layer name as Keras 3 allows it."""
    return name.replace("/", "_")


def _lists(value):
    """tf_keras config values with TensorFlow's ListWrapper/DictWrapper made plain."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list) and type(value) is not list:
        return [_lists(v) for v in value]
    if isinstance(value, (list, tuple)):
        return type(value)(_lists(v) for v in value)
    return value


def summary(problems, limit=4):
    """{path: why} as one line, each reason once with the layers it holds for."""
    by_reason = {}
    for path, why in problems.items():
        by_reason.setdefault(why, []).append(path)
    parts = []
    for why, paths in by_reason.items():
        shown = ", ".join(paths[:limit]) + (f" and {len(paths) - limit} more"
                                            if len(paths) > limit else "")
        parts.append(f"{shown}: {why}")
    return "; ".join(parts)


# --- Keras 3 activations tf_keras lacks (or computes otherwise), built from tf_keras layers
# the way tf_keras' keras.applications build them (MobileNetV3's hard_sigmoid/hard_swish).
# Each takes the name of the layer it follows: the layers it makes are named
# after it (auto-names such as "re_lu" could clash with the model's own).

def _hard_sigmoid(tf_keras, x, name):
    return tf_keras.layers.ReLU(6.0, name=f"{name}_relu6")(x + 3.0) * (1.0 / 6.0)


def _hard_silu(tf_keras, x, name):
    return tf_keras.layers.Multiply(name=f"{name}_hard_silu")([x, _hard_sigmoid(tf_keras, x, name)])


def _log_softmax(tf_keras, x, name):
    from pipeline.backend import tf
    return tf.nn.log_softmax(x)


COMPOSED = {
    "relu6": lambda tf_keras, x, name: tf_keras.layers.ReLU(6.0, name=f"{name}_relu6")(x),
    "leaky_relu": lambda tf_keras, x, name: tf_keras.layers.LeakyReLU(
        alpha=0.2, name=f"{name}_leaky_relu")(x),
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": _hard_silu,
    "hard_swish": _hard_silu,
    "log_softmax": _log_softmax,
}


# --- Keras 3 ops (graph nodes that are not layers) as TensorFlow functions on
# tf_keras tensors: tf_keras makes each a TFOpLambda layer.

def _binary(name):
    def call(op, x1, x2):
        from pipeline.backend import tf
        return getattr(tf.math, name)(x1, x2)
    return call


def _unary(function):
    def call(op, x):
        from pipeline.backend import tf
        module, _, attr = function.rpartition(".")
        target = tf
        for part in module.split("."):
            target = getattr(target, part) if part else target
        return getattr(target, attr)(x)
    return call


def _mean(op, x):
    from pipeline.backend import tf
    return tf.reduce_mean(x, axis=op.axis, keepdims=op.keepdims)


def _sum(op, x):
    from pipeline.backend import tf
    return tf.reduce_sum(x, axis=op.axis, keepdims=op.keepdims)


def _max(op, x):
    from pipeline.backend import tf
    if op.initial is not None:
        raise UntranslatableError("keras.ops.max with `initial` has no TensorFlow twin")
    return tf.reduce_max(x, axis=op.axis, keepdims=op.keepdims)


def _reshape(op, x):
    from pipeline.backend import tf
    return tf.reshape(x, op.newshape)


def _transpose(op, x):
    from pipeline.backend import tf
    return tf.transpose(x, op.axes)


def _concatenate(op, xs):
    from pipeline.backend import tf
    return tf.concat(list(xs), axis=op.axis)


def _expand_dims(op, x):
    from pipeline.backend import tf
    return tf.expand_dims(x, op.axis)


def _squeeze(op, x):
    from pipeline.backend import tf
    return tf.squeeze(x, op.axis)


def _cast(op, x):
    from pipeline.backend import tf
    return tf.cast(x, op.dtype)


def _clip(op, x):
    from pipeline.backend import tf
    return tf.clip_by_value(x, op.x_min, op.x_max)


def _softmax(op, x):
    from pipeline.backend import tf
    return tf.nn.softmax(x, axis=op.axis)


def _gelu(op, x):
    from pipeline.backend import tf
    return tf.nn.gelu(x, approximate=op.approximate)


def _hard_sigmoid_op(op, x):
    from pipeline.backend import tf
    return tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def _hard_silu_op(op, x):
    return x * _hard_sigmoid_op(op, x)


OPS = {
    "Add": _binary("add"), "Subtract": _binary("subtract"), "Multiply": _binary("multiply"),
    "Divide": _binary("divide"), "TrueDivide": _binary("truediv"),
    "Maximum": _binary("maximum"), "Minimum": _binary("minimum"), "Power": _binary("pow"),
    "Matmul": lambda op, a, b: __import__("pipeline.backend", fromlist=["tf"]).tf.linalg.matmul(a, b),
    "Negative": _unary("math.negative"), "Abs": _unary("math.abs"), "Sqrt": _unary("math.sqrt"),
    "Square": _unary("math.square"), "Exp": _unary("math.exp"), "Log": _unary("math.log"),
    "Rsqrt": _unary("math.rsqrt"), "Tanh": _unary("math.tanh"), "Sigmoid": _unary("math.sigmoid"),
    "Relu": _unary("nn.relu"), "Relu6": _unary("nn.relu6"), "Silu": _unary("nn.silu"),
    "HardSigmoid": _hard_sigmoid_op, "HardSilu": _hard_silu_op, "Softmax": _softmax,
    "Gelu": _gelu, "Mean": _mean, "Sum": _sum, "Max": _max, "Reshape": _reshape,
    "Transpose": _transpose, "Concatenate": _concatenate, "ExpandDims": _expand_dims,
    "Squeeze": _squeeze, "Cast": _cast, "Clip": _clip,
}


def op_twin(op):
    """A callable(*args) computing Keras 3 op `op` with TensorFlow on tf_keras tensors."""
    name = type(op).__name__
    if name not in OPS:
        raise UntranslatableError(f"keras.ops {name} has no tf_keras twin here (known ops: "
                                  f"{', '.join(sorted(OPS))})")
    return lambda *args, **kwargs: OPS[name](op, *args, **kwargs)


# --- tf_keras TFOpLambda layers (TensorFlow functions on tf_keras tensors) as Keras 3 ops.

def _keras3_ops():
    import keras
    return keras.ops


TF_FUNCTIONS_TO_KERAS3 = {
    "__operators__.add": "add", "math.add": "add", "math.subtract": "subtract",
    "math.multiply": "multiply", "math.truediv": "true_divide", "math.divide": "divide",
    "math.maximum": "maximum", "math.minimum": "minimum", "math.negative": "negative",
    "math.sqrt": "sqrt", "math.square": "square", "math.exp": "exp", "math.tanh": "tanh",
    "math.sigmoid": "sigmoid", "nn.relu": "relu", "nn.relu6": "relu6", "nn.silu": "silu",
    "nn.softmax": "softmax", "linalg.matmul": "matmul", "reshape": "reshape",
    "transpose": "transpose", "math.reduce_mean": "mean", "math.reduce_sum": "sum",
    "expand_dims": "expand_dims", "squeeze": "squeeze", "concat": "concatenate",
    "cast": "cast",
}
# TensorFlow argument names -> the keras.ops argument names they may be, in order.
_ARGUMENT_NAMES = {"x": ("x", "x1"), "y": ("x2",), "a": ("x", "x1"), "b": ("x2",),
                   "tensor": ("x",), "input": ("x",), "input_tensor": ("x",), "logits": ("x",),
                   "features": ("x",), "perm": ("axes",), "shape": ("newshape",),
                   "values": ("xs",)}


def keras3_op_for(tf_op_layer):
    """A callable(*args, **kwargs) computing tf_keras TFOpLambda `tf_op_layer` with keras.ops."""
    symbol = getattr(tf_op_layer, "symbol", None)
    if symbol not in TF_FUNCTIONS_TO_KERAS3:
        raise UntranslatableError(f"TensorFlow function {symbol!r} (a TFOpLambda layer) has no "
                                  "keras.ops twin here")
    function = getattr(_keras3_ops(), TF_FUNCTIONS_TO_KERAS3[symbol])
    parameters = inspect.signature(function).parameters

    def call(*args, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k != "name"}
        renamed = {}
        for key, value in kwargs.items():
            targets = [t for t in (key,) + _ARGUMENT_NAMES.get(key, ()) if t in parameters]
            if not targets:
                raise UntranslatableError(f"{symbol}: argument {key!r} has no keras.ops "
                                          f"{function.__name__} twin")
            renamed[targets[0]] = value
        return function(*args, **renamed)
    return call
