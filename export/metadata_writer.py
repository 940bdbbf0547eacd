"""Writes or reads TFLite metadata with the TFLite Support library; runs in its own environment.

    <side env python> export/metadata_writer.py write --model=IN --out=OUT --labels=labels.txt \
        --spec=spec.json
    <side env python> export/metadata_writer.py read --model=FILE
    <side env python> export/metadata_writer.py serve --reply_fd=N   # write, one request a line

tflite-support 0.4.4 needs protobuf<4 and numpy<2, which clash with
TensorFlow 2.21, so this script runs in the venv export/metadata.py makes:
it imports only the standard library, numpy and tflite_support (no
greenlite module). `spec.json` holds {name, description, version, kind
("image" | "features"), color_space ("GRAYSCALE" | "RGB"), mean, std, min,
max}: the normalization an app applies (x = (raw - mean) / std) and the range
of the raw values. `read` prints {"metadata": <the displayer's JSON>,
"associated_files": [...], "min_parser_version": ...}.
"""
import argparse
import ctypes
import json
import os
import sys


def _load_libusb():
    """tflite-support's compiled metadata module links libusb-1.0 (not present on
    minimal systems); the libusb-package wheel ships it: load it first by path."""
    try:
        import libusb_package
    except ImportError:
        return
    path = os.path.join(os.path.dirname(libusb_package.__file__), "libusb-1.0.so")
    if os.path.exists(path):
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def _fixed_zip_dates():
    """Makes zipfile date the entries it writes by name 1980-01-01 (the zip
    format's first day), not now: the labels travel in a zip at the file's
    end, and the same model and labels must be the same bytes (a
    reproducible build). The TFLite Support populator names no date itself."""
    import zipfile
    writestr = zipfile.ZipFile.writestr
    if getattr(writestr, "dates_fixed", False):  # a serving process writes many files
        return

    def dated(self, name, data, *args, **kwargs):
        if isinstance(name, str):
            name = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            # What writestr gives an entry named by a string, less the date.
            name.compress_type, name.external_attr = self.compression, 0o600 << 16
        return writestr(self, name, data, *args, **kwargs)

    dated.dates_fixed = True
    zipfile.ZipFile.writestr = dated


def _write(args):
    from tensorflow_lite_support.metadata import metadata_schema_py_generated as fb
    from tensorflow_lite_support.metadata.python.metadata_writers import (metadata_info,
                                                                          metadata_writer,
                                                                          writer_utils)
    with open(args.spec) as f:
        spec = json.load(f)
    model = writer_utils.load_file(args.model)

    def with_range(md):
        """Adds the raw value range (stats) and, for features, the normalization."""
        made = md.create_metadata()
        if spec.get("min") is not None and spec.get("max") is not None:
            made.stats = fb.StatsT()
            made.stats.min, made.stats.max = [float(spec["min"])], [float(spec["max"])]
        if spec["kind"] != "image":
            options = fb.NormalizationOptionsT()
            options.mean, options.std = list(map(float, spec["mean"])), list(map(float, spec["std"]))
            unit = fb.ProcessUnitT()
            unit.optionsType = fb.ProcessUnitOptions.NormalizationOptions
            unit.options = options
            made.processUnits = [unit]
        return made

    input_type = writer_utils.get_input_tensor_types(model)[0]
    output_type = writer_utils.get_output_tensor_types(model)[0]
    if spec["kind"] == "image":
        md = metadata_info.InputImageTensorMd(
            name="image", description=spec.get("input_description", "Input image."),
            norm_mean=list(map(float, spec["mean"])), norm_std=list(map(float, spec["std"])),
            color_space_type=getattr(fb.ColorSpaceType, spec.get("color_space", "RGB")),
            tensor_type=input_type)
    else:
        md = metadata_info.TensorMd(name="features",
                                    description=spec.get("input_description", "Input features."))
    made = with_range(md)
    md.create_metadata = lambda: made  # the writer calls it; ours carries the range
    output_md = metadata_info.ClassificationTensorMd(
        name="probability" if spec.get("probabilities") else "logits",
        description="Scores of the labels, in the order of labels.txt.",
        label_files=[metadata_info.LabelFileMd(args.labels)], tensor_type=output_type)
    general = metadata_info.GeneralMd(name=spec["name"], version=spec.get("version"),
                                      description=spec.get("description"),
                                      author=spec.get("author"))
    writer = metadata_writer.MetadataWriter.create_from_metadata_info(
        model, general_md=general, input_md=[md], output_md=[output_md],
        associated_files=[args.labels])
    _fixed_zip_dates()
    data = writer.populate()
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    print(json.dumps({"bytes": len(data)}))


def _read(args):
    from tensorflow_lite_support.metadata.python import metadata
    displayer = metadata.MetadataDisplayer.with_model_file(args.model)
    print(json.dumps({"metadata": json.loads(displayer.get_metadata_json()),
                      "associated_files": displayer.get_packed_associated_file_list(),
                      "min_parser_version": json.loads(displayer.get_metadata_json()).get(
                          "min_parser_version")}))


def _serve_one(request):
    """A `serve` request {model, out, labels, spec}: written, or {"error": why}."""
    try:
        _write(argparse.Namespace(**request))
        return {}
    except (ValueError, OSError) as e:
        return {"error": " ".join(str(e).split())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("write", "read", "serve"))
    parser.add_argument("--model")
    parser.add_argument("--out")
    parser.add_argument("--labels")
    parser.add_argument("--spec")
    parser.add_argument("--reply_fd", type=int, help="serve: the reply pipe")
    args = parser.parse_args(argv)
    _load_libusb()
    if args.action == "serve":
        # One process writes every file of a run (export/child.py's Server, which
        # puts greenlite on PYTHONPATH: its child module is standard library only).
        from export import child
        child.serve(_serve_one, args.reply_fd)
        return 0
    try:
        (_write if args.action == "write" else _read)(args)
    except (ValueError, OSError) as e:
        print(f"metadata: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
