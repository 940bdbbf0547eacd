"""int4_grid: its grid is the one ai-edge-quantizer stores, and training stays on it."""
import numpy as np
import pytest

from pipeline import int4_grid
from pipeline.backend import keras


def _dense_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(32, name="out")(hidden))


def _onto_grid(model, granularity):
    for _, weight, axes in int4_grid.targets(model, granularity):
        weight.assign(int4_grid.on_grid(weight, axes, granularity))


def _file_kernels(path):
    """The file's int4 FULLY_CONNECTED weights as the interpreter sees them, (in, out)."""
    from export.tflite_file import weight_tensors
    return {w.shape: w.dequantized().T for w in weight_tensors(path) if w.dtype == "int4"}


@pytest.mark.parametrize("granularity,fmt", [("blockwise_32", "int4_blockwise"),
                                             ("channelwise", "int4_weights")])
def test_weights_on_the_grid_are_stored_exactly(granularity, fmt, tmp_path):
    # Breaks if on_grid's scale or rounding is not ai-edge-quantizer's (max|w|/7,
    # bfloat16 block scales, [-8, 7]): the file would hold other values.
    from tests.conftest import export_file

    class Calibration:  # export_file asks data for representative inputs
        representative = staticmethod(lambda count, seed: np.zeros((count, 64), np.float32))

    for on_grid in (True, False):
        model = _dense_model()
        if on_grid:
            _onto_grid(model, granularity)
        path = export_file(model, fmt, Calibration, tmp_path / f"{on_grid}.tflite")
        stored = _file_kernels(path)
        assert len(stored) == 2
        for layer in ("hidden", "out"):
            kernel = model.get_layer(layer).kernel.numpy()
            difference = np.abs(stored[kernel.shape[::-1]] - kernel).max()
            if on_grid:
                assert difference <= 1e-6 * np.abs(kernel).max(), (layer, difference)
            else:  # the control: post-training rounding moves the weights
                assert difference > 1e-3 * np.abs(kernel).max(), (layer, difference)


def test_targets_are_the_kernels_each_granularity_quantizes():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10, name="odd_inputs")(x)  # 64 inputs
    x = keras.layers.Dense(16, name="small")(keras.layers.Dense(20, name="twenty")(x))
    model = keras.Model(inputs, x)
    names = lambda granularity: sorted(name for name, _, _ in int4_grid.targets(model, granularity))
    assert names("channelwise") == ["conv/kernel", "odd_inputs/kernel", "small/kernel",
                                    "twenty/kernel"]
    # Blockwise: FULLY_CONNECTED only, and only inputs that are whole blocks of 32.
    assert names("blockwise_32") == ["odd_inputs/kernel"]


def test_einsum_input_axes():
    assert int4_grid._einsum_input_axes("abc,cde->abde") == 1  # attention's query/key/value
    assert int4_grid._einsum_input_axes("abcd,cde->abe") == 2  # attention's output
    assert int4_grid._einsum_input_axes("abc,dce->abde") is None  # contracted axis not leading


def test_straight_through_training_moves_weights_across_grid_steps(digits):
    # A step of Adam at lr 1e-3 is far smaller than a grid step (max|w| / 7),
    # so projecting the weights after each step would never move one; the
    # straight-through master copy accumulates the steps until they cross.
    keras.utils.set_random_seed(0)
    inputs = keras.Input(digits.input_shape)
    hidden = keras.layers.Dense(64, activation="relu", name="hidden")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="out")(hidden))
    targets = int4_grid.targets(model, "channelwise")
    _onto_grid(model, "channelwise")
    before = [w.numpy().copy() for _, w, _ in targets]
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.train.x, digits.train.y, batch_size=32, epochs=2, verbose=0,
              callbacks=[int4_grid.straight_through(targets, "channelwise")])
    assert int4_grid.off_grid(targets, "channelwise") < 1e-6
    # Moved by at least a tenth of a grid step (re-rounding moves values by ~1e-8).
    moved = np.mean(np.concatenate([(np.abs(w.numpy() - b) > np.abs(b).max() / 70).ravel()
                                    for (_, w, _), b in zip(targets, before)]))
    assert moved > 0.05, moved


def test_stage_rejects_a_model_without_int4_weights(tmp_path, digits):
    from tests.conftest import run_stage
    from pipeline.errors import RecipeError
    keras.utils.set_random_seed(0)
    inputs = keras.Input(digits.input_shape)
    x = keras.layers.Flatten()(keras.layers.DepthwiseConv2D(3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, name="out")(x))  # 36 inputs
    with pytest.raises(RecipeError, match="no weight int4 export quantizes at blockwise_32"):
        run_stage("int4_aware", {"epochs": 1}, model, digits, tmp_path)
