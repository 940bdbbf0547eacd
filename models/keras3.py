"""Keras 3 models in and out: detect, translate to tf_keras, verify, and write back.

tfmot (pruning, clustering, QAT) works only on tf_keras, and tf_keras cannot
read a Keras 3 file. So a Keras 3 model is loaded by Keras 3 (the `keras`
package, in the same process) and rebuilt as an equivalent tf_keras model:
every layer from its own config (models/keras3_layers.py: the settings and
activations that differ), the functional graph replayed node by node (nested
models, shared layers and keras.ops calls included), every weight copied,
and the two models' outputs compared on real inputs before any stage runs.

    source = keras3.load("cnn.keras")                  # a Keras 3 model
    translation = keras3.to_tf_keras(source)           # UntranslatableError names every blocker
    difference = keras3.verify(source, translation, x) # ModelError names the first layer off
    keras3.save_keras3(tf_keras_model, "model.keras", x)  # back to Keras 3, checked again

A model with a layer or op that has no tf_keras twin (a custom Keras 3
layer without a declared twin, a Lambda of keras.ops) cannot be trained
here, but it can still be converted as it is: `export_saved_model` writes
the SavedModel the converter reads.
"""
import dataclasses
import json
import os
import zipfile
from typing import Optional

import numpy as np

from models.keras3_layers import (REFUSED, COMPOSED, UntranslatableError, keras3_config,
                                  keras3_op_for, keras3_name, op_twin, refusal, summary,
                                  tf_keras_config)
from pipeline.errors import ModelError

# Outputs of the translated model may differ from the Keras 3 model's by this
# much, relative to the range of the Keras 3 outputs: float32 rounding of the
# same arithmetic in another order is ~1e-7.
TOLERANCE = 1e-5


def keras3_module():
    """The Keras 3 package (`import keras`), imported after TensorFlow picked tf_keras."""
    import pipeline.backend  # noqa: F401  TF_USE_LEGACY_KERAS first, whatever imports keras 3
    import keras
    return keras


def written_by(path):
    """The Keras 3 version that wrote the model at `path`, 'saved_model' for a plain
    TensorFlow SavedModel (Keras 3's `model.export`), or None for anything else
    (tf_keras files included). Reads only the file's metadata."""
    if os.path.isdir(path):
        if (os.path.isfile(os.path.join(path, "saved_model.pb"))
                and not os.path.isfile(os.path.join(path, "keras_metadata.pb"))):
            return "saved_model"
        return None
    version = None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                if "metadata.json" in z.namelist():
                    version = json.loads(z.read("metadata.json")).get("keras_version")
        elif path.endswith((".h5", ".hdf5")):
            import h5py
            with h5py.File(path, "r") as f:
                version = f.attrs.get("keras_version")
                version = version.decode() if isinstance(version, bytes) else version
    except (OSError, ValueError, KeyError):
        return None
    if isinstance(version, str) and version.split(".")[0] == "3":
        return version
    return None


def check_file(path, version, where="model.name"):
    """Refuses a Keras 3 file this Keras cannot read: written by a newer Keras,
    or a .keras zip without its weights."""
    installed = keras3_module().__version__
    if _version_tuple(version) > _version_tuple(installed):
        raise ModelError(f"{where}: {path!r} was written by Keras {version}, newer than the "
                         f"installed Keras {installed}; upgrade it (pip install 'keras>={version}') "
                         "or save the model with this Keras")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if "config.json" not in names:
            raise ModelError(f"{where}: {path!r} is a Keras {version} zip without config.json "
                             f"(it holds {', '.join(names[:5]) or 'nothing'}): not a whole model")
        if not any(n.endswith(".weights.h5") or n.endswith(".weights.npz") for n in names):
            raise ModelError(f"{where}: {path!r} is a Keras {version} .keras file without its "
                             f"weights (it holds {', '.join(names)}); save the whole model with "
                             "model.save('model.keras')")


def load(path, custom_objects=None, trust_model_code=False, where="model.name"):
    """The Keras 3 model saved at `path` (.keras or .h5), loaded by Keras 3.

    Args:
      custom_objects: {name: Keras 3 class} of the user's custom layers.
      trust_model_code: allow Lambda layers (Keras 3's safe mode otherwise).
    Raises:
      ModelError: for a file Keras 3 cannot load, in one line.
    """
    keras = keras3_module()
    kwargs = {"compile": False, "custom_objects": dict(custom_objects or {})}
    if path.endswith(".keras"):
        kwargs["safe_mode"] = not trust_model_code
    try:
        model = keras.saving.load_model(path, **kwargs)
    except Exception as e:  # Keras 3 raises ValueError, TypeError, KeyError, OSError ...
        message = " ".join(str(e).split())[:300]
        raise ModelError(f"{where}: Keras {keras.__version__} cannot load {path!r}: "
                         f"{message}") from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"{where}: {path!r} holds a {type(model).__name__}, not a Keras model")
    return model


def keras3_classes(objects):
    """{class name and registered name: class} of the Keras 3 layer classes among the
    values of `objects` (custom objects of both Kerases, models/user.custom_objects_from)."""
    keras = keras3_module()
    found = {}
    for obj in objects.values():
        if isinstance(obj, type) and issubclass(obj, keras.layers.Layer):
            found[obj.__name__] = obj
            found[keras.saving.get_registered_name(obj)] = obj
    return found


def _declared_twin(layer, twins):
    """The tf_keras class `twins` declares for Keras 3 `layer` (by registered or class name)."""
    from pipeline.backend import keras as tf_keras
    keras = keras3_module()
    for key in (keras.saving.get_registered_name(type(layer)), type(layer).__name__):
        twin = twins.get(key)
        if isinstance(twin, type) and issubclass(twin, tf_keras.layers.Layer):
            return twin
    return None


@dataclasses.dataclass
class Translation:
    """A tf_keras model rebuilt from a Keras 3 model, with each Keras 3 node's output
    tensor paired with its tf_keras twin (topological order) to find where they part."""
    model: object
    pairs: list  # [(operation name, Keras 3 tensor, tf_keras tensor)]
    source: object = None


def blockers(model, twins=None, prefix=""):
    """{layer or op path: why it has no tf_keras twin} over the whole graph (nested models
    included); empty when `to_tf_keras` can translate the model."""
    keras = keras3_module()
    graph = _graph(model)
    if graph is None:
        return {prefix + model.name: "a subclassed Keras 3 model has no layer graph to translate"}
    found, seen = {}, set()
    for node in _nodes(graph):
        op = node.operation
        if id(op) in seen:
            continue
        seen.add(id(op))
        path = prefix + op.name
        if isinstance(op, keras.Model):
            found.update(blockers(op, twins, prefix=path + "/"))
            continue
        try:
            if isinstance(op, keras.layers.Layer):
                _twin_layer(op, twins or {})
            else:
                op_twin(op)
        except UntranslatableError as e:
            found[path] = str(e)
    return found


def to_tf_keras(model, twins=None):
    """Rebuilds Keras 3 `model` as a tf_keras model with the same weights.

    Args:
      twins: {Keras 3 class name or registered name: tf_keras class} for custom layers.
    Raises:
      UntranslatableError: naming every layer or op without a twin, and why.
    """
    problems = blockers(model, twins)
    if problems:
        raise UntranslatableError(summary(problems))
    pairs = []
    translated = _replay_keras3(model, twins or {}, {}, pairs)
    return Translation(translated, pairs, model)


def verify(source, translation, x, tolerance=TOLERANCE, what="the tf_keras translation"):
    """The largest |difference| of the two models' outputs on `x`, relative to the range
    of the source's outputs; raises ModelError naming the first layer whose outputs part
    when it exceeds `tolerance`."""
    expected = _flat_outputs(source, x)
    got = _flat_outputs(translation.model, x)
    difference = _relative(expected, got)
    if difference <= tolerance:
        return difference
    where = _first_parting(source, translation, x, tolerance) if translation.pairs else None
    raise ModelError(f"model.name: {what} differs from the original by {difference:.3g} of its "
                     f"output range (allowed {tolerance:g})"
                     + (f"; the first layer whose outputs differ: {where}" if where else ""))


def _relative(expected, got):
    spread = max(float(np.max(e) - np.min(e)) for e in expected) if expected else 0.0
    worst = max(float(np.max(np.abs(e - g))) for e, g in zip(expected, got)) if expected else 0.0
    return worst / max(spread, 1e-12)


def _flat_outputs(model, x):
    outputs = model(x, training=False)
    if isinstance(outputs, dict):
        outputs = [outputs[k] for k in sorted(outputs)]
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(o, dtype=np.float64) for o in outputs]


def _first_parting(source, translation, x, tolerance):
    """The name of the first operation whose Keras 3 and tf_keras outputs differ."""
    keras = keras3_module()
    from pipeline.backend import keras as tf_keras
    graph = _graph(source)
    names = [name for name, _, _ in translation.pairs]
    left = keras.Model(graph.inputs, [k for _, k, _ in translation.pairs])(x, training=False)
    right = tf_keras.Model(translation.model.inputs,
                           [t for _, _, t in translation.pairs])(x, training=False)
    left = left if isinstance(left, (list, tuple)) else [left]
    right = right if isinstance(right, (list, tuple)) else [right]
    for name, a, b in zip(names, left, right):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        # Against the values' size as well as their spread: a layer whose outputs
        # barely vary (a saturated sigmoid) would otherwise part on rounding alone.
        scale = max(float(np.ptp(a)), float(np.max(np.abs(a))), 1e-12) if a.size else 1.0
        if a.shape != b.shape or float(np.max(np.abs(a - b), initial=0.0)) / scale > tolerance:
            return name
    return None


def _graph(model):
    """The functional graph of a Keras 3 model (a Sequential's built one), or None."""
    keras = keras3_module()
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model if hasattr(model, "_nodes_by_depth") else None


def _nodes(graph):
    """The graph's operation nodes, inputs first."""
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def _replay_keras3(model, twins, cache, pairs=None):
    """tf_keras twin of Keras 3 `model`, built by calling each node's twin on tf_keras tensors."""
    from keras.src import tree

    from pipeline.backend import keras as tf_keras
    graph = _graph(model)
    inputs = [tf_keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype,
                             name=t._keras_history.operation.name) for t in graph.inputs]
    tensors = {id(k): v for k, v in zip(graph.inputs, inputs)}
    for node in _nodes(graph):
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = _call_twin(node.operation, args, kwargs, twins, cache)
        for k3, tk in zip(node.outputs, tree.flatten(outputs)):
            tensors[id(k3)] = tk
            if pairs is not None:
                pairs.append((node.operation.name, k3, tk))
    outputs = tree.pack_sequence_as(graph._outputs_struct,
                                    [tensors[id(t)] for t in tree.flatten(graph._outputs_struct)])
    return tf_keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=model.name)


def _call_twin(op, args, kwargs, twins, cache):
    keras = keras3_module()
    from pipeline.backend import keras as tf_keras
    if isinstance(op, keras.Model):
        if id(op) not in cache:
            cache[id(op)] = _replay_keras3(op, twins, cache)
        return cache[id(op)](*args, **kwargs)
    if not isinstance(op, keras.layers.Layer):
        return op_twin(op)(*args, **kwargs)
    first = id(op) not in cache
    if first:
        cache[id(op)] = _twin_layer(op, twins)
    twin, after = cache[id(op)]
    outputs = twin(*args, **kwargs)
    if first:
        _copy_weights(op, twin)
    return COMPOSED[after](tf_keras, outputs, op.name) if after else outputs


def _twin_layer(layer, twins):
    """(tf_keras twin of Keras 3 `layer`, Keras 3 activation to apply after it or None)."""
    from pipeline.backend import keras as tf_keras
    cls = type(layer).__name__
    if cls in REFUSED:
        raise UntranslatableError(f"{cls}: {REFUSED[cls]}")
    declared = _declared_twin(layer, twins)
    built_in = type(layer).__module__.startswith("keras.")
    if not declared and not built_in:
        raise UntranslatableError(
            f"custom Keras 3 layer {cls} has no tf_keras twin; declare one in "
            f"model.custom_objects (CUSTOM_OBJECTS = {{'{cls}': YourTfKerasLayer}})")
    if cls == "Activation":
        config, after = tf_keras_config(layer)
        name = config["activation"]
        return (tf_keras.layers.Activation(name, name=layer.name) if not after
                else tf_keras.layers.Activation("linear", name=layer.name)), after
    target = declared or getattr(tf_keras.layers, cls, None)
    if target is None:
        raise UntranslatableError(f"{cls} has no tf_keras layer of that name")
    config, after = tf_keras_config(layer)
    try:
        return target.from_config(config), after
    except (TypeError, ValueError) as e:
        raise UntranslatableError(f"{cls}: tf_keras refuses its settings: {refusal(e)}") from None


def _copy_weights(source, target):
    """Copies `source`'s weights into the built `target`, position by position."""
    weights = source.get_weights()
    shapes = [w.shape for w in target.get_weights()]
    if [w.shape for w in weights] != shapes:
        raise ModelError(f"model.name: layer {source.name!r} ({type(source).__name__}) holds "
                         f"weights of shapes {[tuple(w.shape) for w in weights]} but its tf_keras "
                         f"twin holds {[tuple(s) for s in shapes]}")
    target.set_weights(weights)


# --- back to Keras 3

class _Fixed:
    """A tensor tf_keras' Node.map_arguments may 'pop' as often as it likes."""

    def __init__(self, value):
        self.value = value

    def pop(self):
        return self.value


class _FixedDict(dict):
    def __getitem__(self, key):
        return _Fixed(dict.__getitem__(self, key))


def to_keras3(model, cache=None):
    """Rebuilds tf_keras `model` as a Keras 3 model with the same weights.

    Raises:
      UntranslatableError: for a layer without a Keras 3 twin (a greenlite or user
        custom layer, a training wrapper) or a subclassed model.
    """
    keras = keras3_module()
    from pipeline.backend import keras as tf_keras
    from pipeline.backend import tf
    cache = {} if cache is None else cache
    if not getattr(model, "_is_graph_network", False):
        raise UntranslatableError(f"{model.name}: a subclassed tf_keras model has no layer graph")
    problems = _keras3_blockers(model)
    if problems:
        raise UntranslatableError(summary(problems))
    inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype.name, name=name)
              for t, name in zip(model.inputs, model.input_names)]
    tensors = _FixedDict({str(id(k)): v for k, v in zip(model.inputs, inputs)})
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input:
                continue
            args, kwargs = node.map_arguments(tensors)
            layer = node.layer
            if isinstance(layer, tf_keras.Model):
                if id(layer) not in cache:
                    cache[id(layer)] = to_keras3(layer, cache)
                outputs = cache[id(layer)](*args, **kwargs)
            elif type(layer).__name__ in ("TFOpLambda", "SlicingOpLambda"):
                outputs = keras3_op_for(layer)(*args, **kwargs)
                # The op's auto-name ('multiply') may be a layer's name already:
                # it takes the TFOpLambda's own, unique one.
                for output in tf.nest.flatten(outputs):
                    output._keras_history.operation.name = keras3_name(layer.name)
            else:
                first = id(layer) not in cache
                if first:
                    cache[id(layer)] = _keras3_twin(layer)
                outputs = cache[id(layer)](*args, **kwargs)
                if first:
                    _copy_weights(layer, cache[id(layer)])
            for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                dict.__setitem__(tensors, x_id, y)
    outputs = [dict.__getitem__(tensors, str(id(t))) for t in model.outputs]
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                       outputs[0] if len(outputs) == 1 else outputs, name=model.name)


def _keras3_blockers(model, prefix=""):
    from pipeline.backend import keras as tf_keras
    found = {}
    for layer in model.layers:
        path = prefix + layer.name
        if isinstance(layer, tf_keras.Model):
            if not getattr(layer, "_is_graph_network", False):
                found[path] = "a subclassed tf_keras model has no layer graph"
            else:
                found.update(_keras3_blockers(layer, path + "/"))
            continue
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            if type(layer).__name__ in ("TFOpLambda", "SlicingOpLambda"):
                keras3_op_for(layer)
            else:
                _keras3_twin(layer)
        except UntranslatableError as e:
            found[path] = str(e)
    return found


def _keras3_twin(layer):
    keras = keras3_module()
    cls = type(layer).__name__
    if not type(layer).__module__.startswith(("tf_keras.", "keras.")):
        raise UntranslatableError(f"{cls} is not a Keras layer (a custom or training-wrapper "
                                  "layer: it has no Keras 3 twin here)")
    target = getattr(keras.layers, cls, None)
    if target is None:
        raise UntranslatableError(f"{cls} has no Keras 3 layer of that name")
    try:
        return target.from_config(keras3_config(layer))
    except (TypeError, ValueError) as e:
        raise UntranslatableError(f"{cls}: Keras 3 refuses its settings: {refusal(e)}") from None


def save_keras3(model, path, x, tolerance=TOLERANCE):
    """Writes tf_keras `model` as a Keras 3 `.keras` file at `path` (atomically), after
    checking that the file, loaded again by Keras 3, computes what `model` computes on `x`.
    Returns the relative difference. Raises UntranslatableError or ModelError."""
    import tempfile
    keras = keras3_module()
    rebuilt = to_keras3(model)
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.TemporaryDirectory(prefix=".keras3-", dir=directory) as tmp:
        written = os.path.join(tmp, os.path.basename(path))
        rebuilt.save(written)
        reloaded = keras.saving.load_model(written, compile=False)
        difference = _relative(_flat_outputs(model, x), _flat_outputs(reloaded, x))
        if difference > tolerance:
            raise ModelError(f"the Keras 3 copy of {model.name!r} differs from it by "
                             f"{difference:.3g} of its output range (allowed {tolerance:g})")
        os.replace(written, path)
    return difference


def export_saved_model(model, directory):
    """Writes Keras 3 `model` as the TensorFlow SavedModel the TFLite converter reads
    (Keras 3's own `model.export`, endpoint 'serve')."""
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every endpoint and capture
        model.export(directory, format="tf_saved_model", verbose=False)
    return directory


class SavedModelSource:
    """A TensorFlow SavedModel directory (Keras 3's `model.export`) standing in for a
    model on the post-training path: it has no layers, its `serve` function computes,
    and the TFLite converter reads the directory itself."""

    def __init__(self, path):
        from pipeline.backend import tf
        self.path = os.path.abspath(path)
        self.name = os.path.basename(os.path.normpath(path))
        try:
            loaded = tf.saved_model.load(self.path)
        except Exception as e:  # TensorFlow raises OSError, ValueError, NotFoundError ...
            raise ModelError(f"model.name: {path!r} is not a loadable SavedModel: "
                             f"{' '.join(str(e).split())[:200]}") from None
        function = getattr(loaded, "serve", None)
        if function is None or not getattr(function, "input_signature", None):
            raise ModelError(f"model.name: {path!r} is a SavedModel without a 'serve' function "
                             "of fixed inputs (write it with Keras 3's model.export)")
        self._loaded, self._serve = loaded, function
        self.inputs = list(function.input_signature)
        concrete = function.get_concrete_function(*self.inputs)
        self.outputs = tf.nest.flatten(concrete.structured_outputs)
        self.layers = []

    def __call__(self, x, training=False):
        return self._serve(*(x if isinstance(x, (list, tuple)) else [x]))

    def predict_on_batch(self, x):
        return np.asarray(self(x))

    def count_params(self):
        return int(sum(np.prod(v.shape) for v in self._loaded.variables))

    def outputs_probabilities(self):
        """True when the outputs are probabilities. The graph hides its last op inside a
        call, so this is read from the values: on random inputs, every row is >= 0 and
        sums to 1 (logits that did so by chance, on every row, are not met in practice)."""
        spec = self.inputs[0]
        shape = (4,) + tuple(d or 1 for d in spec.shape[1:])
        rng = np.random.default_rng(0)
        x = (rng.integers(0, 2, shape) if spec.dtype.is_integer else rng.uniform(0, 1, shape))
        out = np.asarray(self(x.astype(spec.dtype.as_numpy_dtype)), np.float64)
        return bool(np.all(out >= 0) and np.allclose(out.sum(axis=-1), 1.0, atol=1e-4))


@dataclasses.dataclass
class Keras3Origin:
    """What intake did with a Keras 3 model (report.json's `model.keras3`)."""
    path: str
    keras_version: str
    translated: bool
    difference: Optional[float] = None  # relative max |difference| after translation
    examples: int = 0  # how many inputs the difference was measured on
    blocking: dict = dataclasses.field(default_factory=dict)  # {layer: why not translated}

    def describe(self):
        """One sentence for the report."""
        if self.keras_version == "saved_model":
            return (f"`{self.path}` is a TensorFlow SavedModel (no layer graph): converted as "
                    "it is, post-training only")
        if self.translated:
            how = ("the outputs are identical" if self.difference == 0 else
                   f"outputs differ by at most {self.difference:.2g} of their range")
            return (f"`{self.path}` was written by Keras {self.keras_version} and translated to "
                    f"tf_keras: {how} on {self.examples} data examples")
        return (f"`{self.path}` (Keras {self.keras_version}) was not translated ("
                f"{summary(self.blocking)}): converted as it is, post-training only")

    def to_dict(self):
        return dataclasses.asdict(self)


def _version_tuple(version):
    parts = []
    for piece in str(version).split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
