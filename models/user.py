"""The user's own saved Keras model: `.keras`, `.h5` or a SavedModel directory.

Loading is safe by default. A `Lambda` layer stores Python code that runs
when the model is loaded. tf_keras refuses it in safe mode for `.keras`
files, but **loads it from `.h5` even with safe_mode=True** (checked here).
So greenlite reads the stored model config before loading, whatever the
format, and refuses any Lambda layer unless the recipe says
`trust_model_code: true`. Custom layers come from a module the recipe names
(`custom_objects: my_package.layers` or `path/to/layers.py`): its
`CUSTOM_OBJECTS` dict if it has one, else every Keras layer class in it.
"""
import importlib
import importlib.util
import inspect
import json
import os
import sys
import zipfile

from pipeline.errors import ModelError

SUFFIXES = (".keras", ".h5", ".hdf5")


def is_model_path(name):
    """True when a recipe's model name points at a saved model rather than the zoo."""
    return (name.endswith(SUFFIXES) or os.sep in name or os.path.isdir(name)
            or os.path.isfile(name))


def load(path, trust_model_code=False, custom_objects=None, where="model.name"):
    """Loads a saved model after checking it.

    Args:
      path: a .keras or .h5 file, or a SavedModel directory.
      trust_model_code: allow Lambda layers (they run stored Python code).
      custom_objects: a module name or .py path holding custom layers, or None.
    Raises:
      ModelError: for a missing or unreadable file, a Lambda layer without
        trust, or a custom layer the recipe did not declare.
    """
    config = refuse_lambdas(path, trust_model_code, where)
    from pipeline.backend import keras, tfmot
    kwargs = {"compile": False, "custom_objects": dict(custom_objects or {})}
    if path.endswith(".keras"):
        kwargs["safe_mode"] = not trust_model_code
    try:
        with tfmot.quantization.keras.quantize_scope():
            model = keras.models.load_model(path, **kwargs)
    except (ValueError, TypeError, OSError, KeyError) as e:
        unknown = _unknown_classes(config, kwargs["custom_objects"])
        if unknown:
            raise ModelError(
                f"{where}: {path!r} uses layer class(es) {unknown} that are neither Keras' nor "
                f"declared; declare the module that defines {unknown[0]!r} in "
                "model.custom_objects (a module name or a .py file)") from None
        message = " ".join(str(e).split())[:300]
        raise ModelError(f"{where}: cannot load {path!r} as a Keras model: {message}") from None
    if not isinstance(model, keras.Model):
        raise ModelError(f"{where}: {path!r} holds a {type(model).__name__}, not a Keras model")
    return model


def refuse_lambdas(path, trust_model_code, where="model.name"):
    """The stored config of the model at `path`, after refusing Lambda layers (they
    run Python code stored in the file) unless `trust_model_code`."""
    if not os.path.exists(path):
        raise ModelError(f"{where}: {path!r} does not exist (and is not a zoo model name)")
    config = stored_config(path, where)
    lambdas = [name for cls, name in _layers(config) if cls == "Lambda"]
    if lambdas and not trust_model_code:
        raise ModelError(
            f"{where}: {path!r} contains Lambda layer(s) {lambdas}, which run Python code stored "
            "in the file when it is loaded; greenlite refuses them by default. Set "
            "model.trust_model_code: true only if you trust this file, or replace the Lambda "
            "with a registered custom layer (model.custom_objects)")
    return config


def stored_config(path, where="model.name"):
    """The model config stored in the file, as a dict (read without loading the model)."""
    try:
        if path.endswith(".keras"):
            if not zipfile.is_zipfile(path):
                raise ModelError(f"{where}: {path!r} is not a .keras file (those are zip "
                                 f"archives): it is {what_is(path)}")
            with zipfile.ZipFile(path) as z:
                if "config.json" not in z.namelist():
                    raise ModelError(f"{where}: {path!r} is not a Keras model: it is "
                                     f"{what_is(path)}; a .keras file holds config.json and "
                                     "model.weights.h5")
                return json.loads(z.read("config.json"))
        if path.endswith((".h5", ".hdf5")):
            import h5py
            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
            if raw is None:
                raise ModelError(f"{where}: {path!r} is an HDF5 file without a model config "
                                 "(weights only?); save the whole model")
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if os.path.isdir(path):
            metadata = os.path.join(path, "keras_metadata.pb")
            if not os.path.isfile(metadata):
                raise ModelError(f"{where}: {path!r} is a directory without saved_model.pb: "
                                 "not a SavedModel")
            # The metadata is a protobuf of JSON strings; searching it for class
            # names is enough to find Lambda layers without parsing the proto.
            with open(metadata, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            return {"class_names": [c for c in _quoted_class_names(text)]}
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{where}: {path!r} is not a readable Keras model file: {e}") from None
    raise ModelError(f"{where}: {path!r} is {what_is(path)}; greenlite reads Keras models: a "
                     ".keras or .h5 file (tf_keras or Keras 3) or a SavedModel directory")


def what_is(path):
    """What the file at `path` looks like, for messages ('a PyTorch checkpoint ...')."""
    if os.path.isdir(path):
        return "a directory"
    with open(path, "rb") as f:
        head = f.read(16)
    if head[4:8] == b"TFL3":
        return ("a TFLite file (greenlite converts Keras models to these; benchmark one with "
                "export/benchmark.py)")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "a PyTorch checkpoint (torch.save's zip with data.pkl)"
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return f"a zip archive holding {shown or 'nothing'}"
    if head[:1] == b"\x80":
        return "a Python pickle (a PyTorch or scikit-learn file?)"
    if path.endswith(".onnx"):
        return "an ONNX model"
    return f"a file of {os.path.getsize(path):,} bytes in no model format greenlite knows"


def custom_objects_from(spec, where="model.custom_objects"):
    """{class name: class} from a module name or a .py file."""
    try:
        if spec.endswith(".py"):
            if not os.path.isfile(spec):
                raise ModelError(f"{where}: {spec!r} does not exist")
            module_spec = importlib.util.spec_from_file_location("greenlite_custom_objects", spec)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(spec)
    except ImportError as e:
        raise ModelError(f"{where}: cannot import {spec!r}: {e}") from None
    from pipeline.backend import keras
    bases = (keras.layers.Layer, keras.Model)
    if "keras" in sys.modules:  # the module made Keras 3 layers: they load its Keras 3 files
        bases += (sys.modules["keras"].layers.Layer,)
    defined = {name: obj for name, obj in vars(module).items()
               if inspect.isclass(obj) and issubclass(obj, bases)
               and obj.__module__ == module.__name__}
    declared = getattr(module, "CUSTOM_OBJECTS", None)
    if not isinstance(declared, dict):
        return defined
    # CUSTOM_OBJECTS wins: {'MyLayer': MyTfKerasLayer} names a Keras 3 layer's
    # tf_keras twin; the Keras 3 class it shadows stays, for loading Keras 3 files.
    shadowed = {f"{name} (Keras 3)": obj for name, obj in defined.items()
                if declared.get(name, obj) is not obj}
    return {**defined, **shadowed, **declared}


def _layers(config):
    """(class name, layer name) of every layer in a stored config, nested models included."""
    if "class_names" in config:  # SavedModel metadata: names only
        return [(c, "?") for c in config["class_names"]]
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node and isinstance(node.get("config"), dict):
                found.append((node["class_name"], node["config"].get("name", "?")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _unknown_classes(config, custom_objects):
    """Stored layer classes that neither Keras, tfmot nor `custom_objects` define."""
    from pipeline.backend import keras
    known = {"Functional", "Sequential", "Model", "InputLayer"} | set(custom_objects)
    unknown = []
    for cls, _ in _layers(config):
        name = cls.split(">")[-1]
        if (name in known or hasattr(keras.layers, name) or hasattr(keras.models, name)
                or keras.utils.get_registered_object(cls) is not None or name in unknown):
            continue
        unknown.append(name)
    return unknown


def _quoted_class_names(text):
    import re
    return re.findall(r'"class_name": "([A-Za-z0-9_>.]+)"', text)
