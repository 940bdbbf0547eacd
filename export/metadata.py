"""Android-ready files: TFLite metadata (name, normalization, labels) written into a .tflite.

Android Studio's ML model binding and the TFLite Task Library read a model's
metadata: its name and description, how to normalize the input
(x = (raw - mean) / std), the range of raw values, and the output labels as
an associated file (`labels.txt`, packed into the .tflite's zip tail). The
TFLite Support metadata writers write it; tflite-support 0.4.4 needs
protobuf<4 (TensorFlow 2.21 brings protobuf 7), so it runs in a venv of its
own under ~/.cache/greenlite (export/side_env.py), driven through
export/metadata_writer.py in a child process.

    python = metadata.ensure_env()
    metadata.write(python, "export/train_int8.tflite", "export/labels.txt", spec)
    with metadata.Writer(python) as writer:              # one process for many files
        writer.write("export/train_int8.tflite", "export/labels.txt", spec)
    metadata.read(python, "export/train_int8.tflite")   # the displayer's JSON
"""
import json
import os
import tempfile

from export import child, side_env
from pipeline.errors import GreenliteError, command

SUPPORT = "tflite-support==0.4.4"
# numpy<2 and protobuf<4: what tflite-support 0.4.4 was built against;
# libusb-package: its compiled module links libusb-1.0, missing on minimal systems.
PACKAGES = ["numpy<2", "protobuf<4", SUPPORT, "libusb-package"]
DEFAULT_ENV = os.path.join(side_env.CACHE, "tflite-support-0.4.4")
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metadata_writer.py")


class MetadataError(GreenliteError):
    """The environment cannot be made, or the writer refused the input (one line)."""


def ensure_env(env_dir=DEFAULT_ENV):
    """Creates (once) the tflite-support venv; returns its Python."""
    try:
        return side_env.ensure(env_dir, PACKAGES, SUPPORT,
                               f", and {SUPPORT} has wheels for Python 3.7-3.11 only")
    except side_env.SideEnvError as e:
        raise MetadataError(str(e)) from None


def write_labels(path, class_names):
    """Writes one class name per line (the order of the model's outputs), atomically."""
    from pipeline.files import atomic_write_text
    bad = [n for n in class_names if "\n" in str(n) or not str(n).strip()]
    if bad:
        raise MetadataError(f"labels: {bad[:3]!r}: a label must be one non-empty line")
    atomic_write_text(path, "".join(f"{name}\n" for name in class_names))


def read_labels(path):
    """The labels of a labels file, one per non-empty line."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def has_metadata(tflite_path):
    """True when the file carries TFLite Support metadata."""
    from export import tflite_file
    return any(_name(m) == METADATA_NAME for m in tflite_file.read_model(tflite_path).metadata or [])


def strip_metadata(tflite_path):
    """Removes TFLite Support metadata and its packed files (atomically); returns the new size.

    The populator refuses to pack a file a second time, so metadata written
    again (new labels) starts from the bare model.
    """
    from ai_edge_litert.tools import flatbuffer_utils
    from export import tflite_file
    from pipeline.files import atomic_write_bytes
    model = tflite_file.read_model(tflite_path)
    for entry in [m for m in model.metadata or [] if _name(m) == METADATA_NAME]:
        model.buffers[entry.buffer].data = None
        model.metadata.remove(entry)
    # Serialized anew: the zip of associated files after the flatbuffer is dropped.
    data = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    atomic_write_bytes(tflite_path, data)
    return len(data)


METADATA_NAME = "TFLITE_METADATA"


def _name(entry):
    name = entry.name
    return name.decode() if isinstance(name, bytes) else name


def write(python, tflite_path, labels_path, spec):
    """Writes metadata into `tflite_path` in place (atomically); returns its new size.

    Metadata the file already holds is replaced. For many files, one `Writer`.

    spec: {name, description, version, kind: image|features, color_space,
    mean, std, min, max, probabilities} (see export/metadata_writer.py).
    """
    with Writer(python) as writer:
        return writer.write(tflite_path, labels_path, spec)


class Writer:
    """One metadata writer process (in the tflite-support environment) for many files:
    `with Writer(python) as w: w.write(path, labels, spec)`."""

    def __init__(self, python):
        self._server = child.Server([WRITER, "serve"], "the metadata writer", python=python,
                                    cwd=os.path.dirname(WRITER))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._server.stop()

    def write(self, tflite_path, labels_path, spec):
        """As the module's `write`: the file's metadata (re)written; returns its new size."""
        if has_metadata(tflite_path):
            strip_metadata(tflite_path)
        with tempfile.TemporaryDirectory() as tmp:
            spec_path = os.path.join(tmp, "spec.json")
            with open(spec_path, "w") as f:
                json.dump(spec, f)
            out = os.path.join(tmp, "with_metadata.tflite")
            reply, error = self._server.request(
                {"model": os.path.abspath(tflite_path), "out": out,
                 "labels": os.path.abspath(labels_path), "spec": spec_path}, timeout=300)
            error = error or (reply or {}).get("error")
            if error:
                raise MetadataError(error.removeprefix("metadata: error: "))
            _copy(out, tflite_path)
        return os.path.getsize(tflite_path)


def read(python, tflite_path):
    """{"metadata": displayer JSON, "associated_files": [...], "min_parser_version"}."""
    stdout, error = child.run([WRITER, "read", f"--model={os.path.abspath(tflite_path)}"],
                              timeout=300, what="the metadata reader", python=python,
                              cwd=os.path.dirname(WRITER))
    if error:
        raise MetadataError(error.removeprefix("metadata: error: "))
    return json.loads(stdout)


def _copy(source, target):
    """Copies through a temporary name and a rename (/tmp may be another file system)."""
    from pipeline.files import atomic_write_bytes
    with open(source, "rb") as f:
        atomic_write_bytes(target, f.read())


@command("metadata")
def main(argv=None):
    """`python -m export.metadata --model=F [--env=DIR]`: prints the displayer's JSON."""
    import argparse
    parser = argparse.ArgumentParser(description="Prints a .tflite file's TFLite metadata "
                                                 "(the TFLite Support displayer's JSON).")
    parser.add_argument("--model", required=True)
    parser.add_argument("--env", default=DEFAULT_ENV, help="the tflite-support environment")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        raise MetadataError(f"--model: {args.model!r} does not exist")
    if not has_metadata(args.model):
        raise MetadataError(f"--model: {args.model!r} carries no TFLite metadata")
    print(json.dumps(read(ensure_env(args.env), args.model), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
