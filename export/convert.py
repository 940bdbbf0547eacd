"""Converts a Keras model to TFLite in one of four formats.

  float32        plain conversion
  float16        weights stored as float16, computed in float32
  dynamic_range  int8 weights, float activations (no calibration data)
  int8           full integer: int8 weights, activations, input and output,
                 TFLITE_BUILTINS_INT8 only, calibrated on representative data
  int16x8        int16 activations, int8 weights (more precise than int8 for
                 attention and layer norm); calibrated; float input and output

Run as a program it converts one saved model in its own process, which is how
the runner isolates the converter: a converter abort (SIGABRT in MLIR passes
happens) fails that one variant, not the whole run.

    python -m export.convert --model=DIR/01_train/model.h5 --format=int8 \
        --representative=DIR/export/representative.npy --output=out.tflite
"""
import argparse
import sys

FORMATS = ("float32", "float16", "dynamic_range", "int8", "int16x8")
# The formats whose conversion is calibrated on representative data.
CALIBRATED = ("int8", "int16x8")


def convert(model, fmt, representative=None):
    """Returns the TFLite flatbuffer of `model` in format `fmt`.

    Args:
      model: a tf_keras Model (QAT-annotated models included).
      fmt: one of FORMATS.
      representative: float32 array of example inputs (first axis: examples),
        required for `int8`.
    """
    from pipeline.backend import tf
    from pipeline.errors import ExportError

    if fmt not in FORMATS:
        raise ExportError(f"format: got {fmt!r}; allowed: {', '.join(FORMATS)}")
    if fmt in CALIBRATED and (representative is None or len(representative) == 0):
        raise ExportError(f"{fmt} needs representative data for calibration")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _samples(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if model.inputs[0].dtype.is_floating:
            # Integer inputs (token ids) stay as they are: only float inputs are quantized.
            converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif fmt == "int16x8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _samples(representative)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and friends
        raise ExportError(f"{fmt}: the TFLite converter failed: {_first_line(e)}") from None


def convert_in_child(model_path, fmt, output, representative_path=None, timeout=900,
                     custom_objects=None):
    """Converts a saved model in a child process; returns None or the failure reason.

    The output file is written atomically by the child, so a crash leaves no file.
    """
    from export import child
    args = ["-m", "export.convert", f"--model={model_path}", f"--format={fmt}",
            f"--output={output}"]
    if representative_path:
        args.append(f"--representative={representative_path}")
    if custom_objects:
        args.append(f"--custom_objects={custom_objects}")
    return child.run(args, timeout, "the converter")[1]


def _samples(representative):
    def generate():
        for example in representative:
            # Keep the dtype: float inputs as float32, token ids as int32.
            yield [example[None, ...].astype("int32" if example.dtype.kind in "iu" else "float32")]
    return generate


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv=None):
    parser = argparse.ArgumentParser(description="Convert a saved Keras model to TFLite.")
    parser.add_argument("--model", required=True, help="a model file saved by a stage (models/saved.py)")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True, help="the .tflite file to write")
    parser.add_argument("--representative", help=".npy of example inputs (int8 only)")
    parser.add_argument("--custom_objects", help="module or .py file with the model's custom layers")
    args = parser.parse_args(argv)

    import numpy as np

    from pipeline.errors import GreenliteError
    from pipeline.files import atomic_write_bytes
    try:
        representative = np.load(args.representative) if args.representative else None
        from models import saved
        flatbuffer = convert(saved.load(args.model, args.custom_objects), args.format,
                             representative)
    except GreenliteError as e:
        print(f"greenlite: error: {e}", file=sys.stderr)
        return 2
    atomic_write_bytes(args.output, flatbuffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
