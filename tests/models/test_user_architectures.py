"""The Keras models users bring, saved as .keras, through fine-tune -> prune -> PQAT -> int8.

Each architecture (benchmarks/architectures.py) is saved and loaded as a user
model, fine-tuned, pruned to 75% with the default layer selection, trained
with sparsity-preserving QAT and converted to full int8; the sparsity is then
read from the int8 file's kernels. Small inputs (32x32) and 48 images keep
this to seconds per model, except the keras.applications nets, whose QAT
and int8 conversion take 1.5-9 minutes each on 2 cores: they run when
GREENLITE_SLOW_TESTS=1 (and in `python benchmarks/user_architectures.py`).
Every suite still checks keras.applications' MobileNetV2 output detection
(tests/pipeline/test_outputs.py) and depthwise/BatchNorm selection on its
block pattern (tests/pipeline/test_layers.py).
"""
import os

import numpy as np
import pytest

import models
from models import user
from benchmarks import architectures, architectures_keras3
from export import benchmark
from export.convert import convert
from export.tflite_file import kernel_stats, kernels_by_layer
from pipeline.data import Data
from pipeline.files import atomic_write_bytes
from pipeline.outputs import outputs_probabilities
from tests.conftest import run_stage, slow

SLOW = slow("1.5-9 minutes each")
FIT = {"epochs": 1, "batch_size": 16, "allow_chance": True}  # mechanics, not accuracy


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from PIL import Image

    from pipeline.data.synthetic import scene_images
    root = tmp_path_factory.mktemp("scenes")
    classes = ("circle", "square", "triangle", "cross")
    scene_images(str(root), classes=classes, per_class=12, size=32)
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted(os.listdir(root / name)):
            xs.append(np.asarray(Image.open(root / name / f), np.float32) / 255)
            ys.append(label)
    order = np.random.default_rng(0).permutation(len(ys))
    x, y = np.stack(xs)[order], np.asarray(ys)[order]
    return Data.from_arrays(x[:32], y[:32], x[32:40], y[32:40], x[40:], y[40:],
                            class_names=list(classes))


def _through_every_stage(name, data, tmp_path, keras_version=2):
    """`keras_version` 3: the model is built and saved with Keras 3, and greenlite
    translates it to tf_keras (models/keras3.py) before the first stage."""
    library = architectures_keras3 if keras_version == 3 else architectures
    custom = None
    if name == "custom_layer":
        custom = tmp_path / "user_layers.py"
        custom.write_text(library.CUSTOM_LAYER_MODULE)
    path = tmp_path / f"{name}.keras"
    library.save(name, path, (32, 32, 3), data.num_classes, custom)
    objects = user.custom_objects_from(str(custom)) if custom else None
    data = _as_the_run_scales(data, path)
    result = models.intake(str(path), (32, 32, 3), data.num_classes, custom_objects=objects,
                           sample=data.representative(16, 0))
    assert (result.keras3 is not None) is (keras_version == 3)
    if result.keras3:
        assert result.keras3.translated and result.keras3.difference <= 1e-5
    model = result.model
    tuned, _ = run_stage("train", FIT, model, data, tmp_path, name="finetune")
    pruned, prune_ctx = run_stage("prune", {**FIT, "target_sparsity": 0.75}, tuned, data, tmp_path)
    qat, quantize_ctx = run_stage("quantize", {**FIT, "preserve": "sparsity"}, pruned, data,
                                  tmp_path, claims=prune_ctx.output_claims)
    int8 = tmp_path / f"{name}_int8.tflite"
    atomic_write_bytes(int8, convert(qat, "int8", data.representative(32, 0)))
    return model, prune_ctx.metrics, quantize_ctx.metrics, str(int8), qat, data


def _as_the_run_scales(data, path):
    """`data` ([0, 1] pixels) as a run with `data.scale: auto` feeds the model at `path`:
    0..255 when its first layer rescales raw pixels itself (EfficientNet's Rescaling
    1/255, MobileNetV3's 1/127.5). Fed [0, 1], EfficientNetB0's activations start
    1/255 of their size, the QAT ranges measured on them are too narrow for the
    training-mode BatchNorm outputs, and its second QAT step turned the weights NaN."""
    from pipeline.intake import _leading_rescaling
    if _leading_rescaling(str(path)) is None:
        return data
    splits = [(s.x * 255, s.y) for s in (data.train, data.val, data.test)]
    return Data.from_arrays(*(a for split in splits for a in split),
                            class_names=data.class_names)


def _check(name, data, tmp_path, keras_version=2):
    model, pruned, quantized, int8, qat_model, data = _through_every_stage(
        name, data, tmp_path, keras_version)
    assert outputs_probabilities(model) is (name != "functional_logits")
    # The default selection prunes only what tfmot prunes: nothing falls short.
    assert pruned["pruned_layers"]
    assert all(not why.startswith(("Conv2D:", "Dense:")) for why in pruned["skipped_layers"].values())
    # Every layer QAT leaves in float says why.
    assert all(why for why in quantized["float_layers"].values())
    kernels = kernels_by_layer(int8, pruned["pruned_layers"])
    stats = {n: kernel_stats(t.values, axis=0) for n, t in kernels.items()}
    zeros = sum(s["sparsity"] * s["size"] for s in stats.values())
    assert zeros / sum(s["size"] for s in stats.values()) >= 0.74
    result = benchmark.benchmark(int8, (data.test.x, data.test.y), num_runs=1, warmup_runs=0,
                                 keep_outputs=len(data.test.x))
    assert result["input"]["dtype"] == "int8"
    # The int8 file computes what the QAT model computes, to the quantization's error.
    # (Not its answers: a model trained for one epoch outputs near-uniform scores, and
    # int8 rounding moves every close call.) A file fed with the wrong input scale or
    # read with the wrong output scale is off by far more.
    expected = qat_model.predict(data.test.x, verbose=0)
    error = np.abs(result["outputs"] - expected).max()
    assert error <= 0.15 * max(float(np.ptp(expected)), 1.0), (error, np.ptp(expected))
    return pruned, quantized


@pytest.mark.parametrize("name", ["sequential", "functional_logits", "custom_layer"])
def test_small_keras3_user_models(name, scenes, tmp_path):
    _check(name, scenes, tmp_path, keras_version=3)


@SLOW
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0"])
def test_keras3_applications(name, scenes, tmp_path):
    """The two whose Keras 3 build differs most from tf_keras' (hard-swish of keras.ops,
    swish and squeeze-excite): every family's translation is checked in the main tier
    (tests/models/test_keras3_translate.py), and benchmarks/user_architectures.py
    --keras=3 takes each through the stages."""
    _check(name, scenes, tmp_path, keras_version=3)


@pytest.mark.parametrize("name", ["sequential", "functional_logits", "custom_layer"])
def test_small_user_models(name, scenes, tmp_path):
    _check(name, scenes, tmp_path)


@SLOW
def test_keras_applications_mobilenet_v2(scenes, tmp_path):
    pruned, quantized = _check("mobilenet_v2", scenes, tmp_path)
    skipped = pruned["skipped_layers"]
    assert sum(why == "DepthwiseConv2D: tfmot prunes none of its weights"
               for why in skipped.values()) == 17
    assert quantized["float_layers"] == {}  # BatchNorm folded, depthwise quantized


@SLOW
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0", "resnet", "densenet"])
def test_more_keras_applications(name, scenes, tmp_path):
    _check(name, scenes, tmp_path)
