"""Ternary and binary weights as a tfmot Quantizer and QuantizeConfig.

Ternary (Ternary Weight Networks, Li et al. 2016), per output channel c:
    delta_c = 0.7 * mean|W_c|,  alpha_c = mean of |W_c| where |W_c| > delta_c,
    W_c -> alpha_c * sign(W_c) where |W_c| > delta_c, else 0.
Binary, per output channel: alpha_c = mean|W_c|, W_c -> alpha_c * sign(W_c) (0 -> +).

The low-bit values then pass through an 8-bit symmetric per-channel fake
quantizer with range [-alpha_c, alpha_c], so the TFLite int8 converter stores
them as exactly {-127, 0, 127} (ternary) or {-127, 127} (binary) per channel:
a standard int8 file, no custom ops. Gradients flow straight through to the
float weights (STE). Activations keep tfmot's 8-bit quantizers, so this
composes with QAT and with the collaborative schemes (zeros stay zeros).
"""
from pipeline.backend import keras, tf, tfmot

MODES = ("ternary", "binary")
_quantizers = tfmot.quantization.keras.quantizers


def low_bit(weights, mode):
    """The ternary or binary version of a kernel (output channels on the last axis)."""
    axes = list(range(len(weights.shape) - 1))
    magnitude = tf.abs(weights)
    if mode == "binary":
        alpha = tf.reduce_mean(magnitude, axis=axes)
        return tf.where(weights >= 0, alpha, -alpha)
    delta = 0.7 * tf.reduce_mean(magnitude, axis=axes)
    keep = tf.cast(magnitude > delta, weights.dtype)
    alpha = tf.math.divide_no_nan(tf.reduce_sum(magnitude * keep, axis=axes),
                                  tf.reduce_sum(keep, axis=axes))
    return tf.sign(weights) * keep * alpha


@keras.utils.register_keras_serializable(package="greenlite")
class LowBitQuantizer(_quantizers.Quantizer):
    """Quantizes a kernel to ternary or binary values on an int8 grid (see module doc)."""

    def __init__(self, mode="ternary", baked=False, preserve_sparsity=False):
        if mode not in MODES:
            raise ValueError(f"mode: got {mode!r}; expected one of {MODES}")
        self.mode = mode
        # Set by `bake`: the kernel already holds its low-bit values.
        self.baked = baked
        # Keep the zeros of a pruned kernel (as tfmot's PQAT quantizer does).
        self.preserve_sparsity = preserve_sparsity

    def build(self, tensor_shape, name, layer):
        # The range lives in variables, as in tfmot's LastValueQuantizer: the
        # TFLite converter only folds a FakeQuant whose range is constant once
        # variables are frozen, not one computed by ops.
        channels = int(tensor_shape[-1])
        make = lambda suffix, value: layer.add_weight(
            f"{name}_{suffix}", shape=(channels,), trainable=False,
            initializer=keras.initializers.Constant(value))
        result = {"min_var": make("min", -1.0), "max_var": make("max", 1.0)}
        if self.preserve_sparsity:
            # 1 where the kernel is non-zero when QAT starts, as tfmot's
            # PrunePreserveDefaultWeightsQuantizer computes it.
            kernel = getattr(layer.layer, name)
            result["sparsity_mask"] = tf.math.divide_no_nan(kernel, kernel)
        return result

    def __call__(self, inputs, training, weights, **kwargs):
        if self.baked and (training is None or training is False):
            # Inference after `bake` (what the converter traces): the kernel is
            # already low-bit, and the converter folds a FakeQuant only when it
            # reads the weight itself, not the output of other ops.
            q = inputs
        else:
            q = low_bit(inputs * weights["sparsity_mask"] if "sparsity_mask" in weights
                        else inputs, self.mode)

        def track_range():
            axes = list(range(len(inputs.shape) - 1))
            limit = tf.maximum(tf.reduce_max(tf.abs(q), axis=axes), 1e-8)
            return tf.group(weights["min_var"].assign(-limit), weights["max_var"].assign(limit))

        if training is True or (training is not False and tf.is_tensor(training)):
            update = tf.cond(tf.cast(training, tf.bool), track_range, tf.no_op)
            with tf.control_dependencies([update]):
                q = tf.identity(q)
        q = tf.quantization.fake_quant_with_min_max_vars_per_channel(
            q, weights["min_var"], weights["max_var"], num_bits=8, narrow_range=True)
        return inputs + tf.stop_gradient(q - inputs)

    def get_config(self):
        return {"mode": self.mode, "baked": self.baked, "preserve_sparsity": self.preserve_sparsity}

    def __eq__(self, other):
        return isinstance(other, LowBitQuantizer) and other.get_config() == self.get_config()

    def __ne__(self, other):
        return not self == other


@keras.utils.register_keras_serializable(package="greenlite")
class LowBitWeightsConfig(tfmot.quantization.keras.QuantizeConfig):
    """Low-bit kernel, 8-bit activation: for Dense and Conv2D layers."""

    def __init__(self, mode="ternary", baked=False, preserve_sparsity=False):
        self.mode = mode
        self.baked = baked
        self.preserve_sparsity = preserve_sparsity

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, LowBitQuantizer(self.mode, self.baked, self.preserve_sparsity))]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, _quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False))]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {"mode": self.mode, "baked": self.baked, "preserve_sparsity": self.preserve_sparsity}


def bake(model, layer_names, mode):
    """Writes the low-bit values into the float kernels of a trained QAT model.

    Applying the quantizer to an already ternary (binary) kernel gives it back
    unchanged, so the saved model, the converter and the report all see the
    values the network was trained with.
    """
    for name in layer_names:
        layer = model.get_layer("quant_" + name)
        by_name = {w.name.split("/")[-1].split(":")[0]: w for w in layer.weights}
        _, _, variables = layer._weight_vars[0]  # pylint: disable=protected-access
        kernel = by_name["kernel"]
        if "sparsity_mask" in variables:
            kernel = kernel * variables["sparsity_mask"]
        q = low_bit(kernel, mode)
        by_name["kernel"].assign(q)
        # And the fake-quant range to this final alpha, so +-alpha maps to +-127 exactly.
        limit = tf.maximum(tf.reduce_max(tf.abs(q), axis=list(range(len(q.shape) - 1))), 1e-8)
        by_name["kernel_min"].assign(-limit)
        by_name["kernel_max"].assign(limit)
        layer.quantize_config.baked = True
        for _, quantizer, _ in layer._weight_vars:  # pylint: disable=protected-access
            quantizer.baked = True


CUSTOM_OBJECTS = {"LowBitQuantizer": LowBitQuantizer, "LowBitWeightsConfig": LowBitWeightsConfig}
