"""Converts a Keras model to each format of export/formats.py's table.

The table says who makes a format and with which converter settings; this
module applies them: the TFLite converter for most, ai-edge-quantizer on the
float32 file for the int4 and int16x8_mixed formats, tf2onnx and ONNX
Runtime for the ONNX files (export/onnx_convert.py), TensorRT for engines
(export/tensorrt_engine.py).

Before a calibrated conversion, Keras attention layers that mask with -1e9
are rewritten to a bounded mask (models/attention.py): the -1e9 would set
the calibrated range of the attention scores and round every real score to 0.

Run as a program it converts one saved model in its own process, which is how
the runner isolates the converter: a converter abort (SIGABRT in MLIR passes
happens) fails that one variant, not the whole run. The runner keeps that
process between runs (`--serve`, convert_all_in_child).

    python -m export.convert --model=DIR/01_train/model.h5 --format=int8 \
        --representative=DIR/export/representative.npy --output=out.tflite
"""
import argparse
import os
import sys

from export import formats as formats_lib

FORMATS = formats_lib.REQUESTABLE
CALIBRATED = formats_lib.names(calibrated=True)


def convert(model, fmt, representative=None, bound_attention=True):
    """Returns the file (bytes) of `model` in format `fmt`: a TFLite flatbuffer, an
    ONNX file or a TensorRT engine, as the format's runtime says.

    Args:
      model: a tf_keras Model (QAT-annotated models included).
      fmt: one of FORMATS.
      representative: array of example inputs (first axis: examples): the
        calibration data of the CALIBRATED formats (required there), unused
        by the others.
      bound_attention: False keeps an attention mask int8 cannot hold (for
        measuring what the rewrite is worth).
    """
    from pipeline.backend import tf
    from pipeline.errors import ExportError

    if fmt not in FORMATS:
        raise ExportError(f"format: got {fmt!r}; allowed: {', '.join(FORMATS)}")
    spec = formats_lib.get(fmt)
    if spec.calibrated and (representative is None or len(representative) == 0):
        raise ExportError(f"{fmt} needs representative data for calibration")
    if spec.calibrated and bound_attention:
        from models.attention import bound_attention_masks
        model, _ = bound_attention_masks(model)
    if spec.maker == "ai_edge_quantizer":
        return ai_edge_quantize(convert(model, "float32"), fmt, representative)
    if spec.runtime in ("onnxruntime", "tensorrt"):
        from export import onnx_convert
        if spec.needs_gpu:
            from export import tensorrt_engine
            tensorrt_engine.check_gpu(fmt)  # before the ONNX file: seconds saved, one line
        onnx_file = onnx_convert.to_onnx(model, fmt=fmt)
        if spec.quantizer:
            onnx_file = onnx_convert.quantize_int8(onnx_file, representative, fmt=fmt,
                                                   **spec.quantizer)
        if spec.needs_gpu:
            return tensorrt_engine.build(onnx_file, fmt)
        return onnx_file
    converter = keras_converter(model)
    if spec.optimization:
        converter.optimizations = [getattr(tf.lite.Optimize, spec.optimization)]
    if spec.supported_types:
        converter.target_spec.supported_types = [getattr(tf, t) for t in spec.supported_types]
    if spec.ops:
        converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, o) for o in spec.ops]
    if spec.calibrated:
        converter.representative_dataset = representative_dataset(representative)
    if spec.integer_io:
        if model.inputs[0].dtype.is_floating:
            # Integer inputs (token ids) stay as they are: only float inputs are quantized.
            converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and friends
        if not (_is_saved_model(model) and "TF Select ops" in str(e)):
            raise ExportError(f"{fmt}: the TFLite converter failed: {_first_line(e)}") from None
    # A SavedModel (Keras 3's export) may hold TensorFlow ops TFLite has no
    # kernel for: they stay TensorFlow ops (Flex), which the report names.
    converter.target_spec.supported_ops = (set(converter.target_spec.supported_ops)
                                           | {tf.lite.OpsSet.SELECT_TF_OPS})
    try:
        return converter.convert()
    except Exception as e:  # pylint: disable=broad-except
        raise ExportError(f"{fmt}: the TFLite converter failed, TF select ops allowed: "
                          f"{_first_line(e)}") from None


def keras_converter(model):
    """The TFLite converter of a tf_keras model, or of a SavedModel directory on the
    post-training path (models.keras3.SavedModelSource: its 'serve' function)."""
    from pipeline.backend import tf
    if _is_saved_model(model):
        return tf.lite.TFLiteConverter.from_saved_model(model.path, signature_keys=["serve"])
    return tf.lite.TFLiteConverter.from_keras_model(model)


def _is_saved_model(model):
    from models.keras3 import SavedModelSource
    return isinstance(model, SavedModelSource)


def flex_ops(path):
    """The TensorFlow select ops (Flex delegate) a .tflite file holds, by TF op name."""
    from export.tflite_file import read_model
    codes = [c.customCode for c in read_model(path).operatorCodes if c.customCode]
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in codes]
    return sorted({n.removeprefix("Flex") for n in names if n.startswith("Flex")})


def ai_edge_quantize(float_flatbuffer, fmt, representative=None):
    """`float_flatbuffer` quantized by ai-edge-quantizer as `fmt` says (its table entry)."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # its calibration draws progress bars
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    from pipeline.errors import ExportError
    manager = recipe_manager.RecipeManager()
    everything = dict(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED)
    settings = dict(formats_lib.get(fmt).quantizer)
    add = {"static": manager.add_static_config, "dynamic": manager.add_dynamic_config,
           "weight_only": manager.add_weight_only_config}[settings.pop("mode")]
    if "granularity" in settings:
        settings["granularity"] = getattr(qtyping.QuantGranularity, settings["granularity"])
    add(**everything, **settings)
    try:
        q = quantizer.Quantizer(bytearray(float_flatbuffer), manager.get_quantization_recipe())
        calibration = None
        if fmt in CALIBRATED:
            calibration = q.calibrate(_calibration_data(float_flatbuffer, representative))
        return bytes(q.quantize(calibration, enable_progress_report=False).quantized_model)
    except Exception as e:  # pylint: disable=broad-except
        # ai-edge-quantizer raises ValueError/RuntimeError/KeyError for ops it rejects.
        raise ExportError(f"{fmt}: ai-edge-quantizer failed: {_first_line(e)}") from None


def _calibration_data(float_flatbuffer, representative):
    """ai-edge-quantizer's calibration input: {signature: [{input name: one example}]}."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=bytes(float_flatbuffer))
    key, signature = next(iter(interpreter.get_signature_list().items()))
    name = signature["inputs"][0]
    dtype = interpreter.get_signature_runner(key).get_input_details()[name]["dtype"]
    return {key: [{name: representative[i:i + 1].astype(dtype)}
                  for i in range(len(representative))]}


# The converter child of this process, kept between runs (see convert_all_in_child).
_CONVERTER = None


def start_converter():
    """Starts the converter child now (it imports TensorFlow on start), so that the
    first `convert_all_in_child` does not wait for it; a no-op when it runs."""
    from export import child
    global _CONVERTER
    if _CONVERTER is None:
        _CONVERTER = child.Server(["-m", "export.convert", "--serve"], "the converter")
    _CONVERTER.start()


def convert_all_in_child(jobs, representative_path=None, timeout=900, custom_objects=None,
                         on_done=None, bound_attention=True):
    """Converts [(model_path, fmt, output)] in a child process, in order; returns
    [None or the failure reason] per job.

    The child is kept for the next call (one TensorFlow start-up, seconds, for
    all the runs of a process: a search's trials, the tests), with each job
    still isolated: a crash or a timeout fails the job it hit (the child
    records each finished job in a progress file before the next), and a
    fresh child goes on with the rest. `timeout` is per job. `on_done(index,
    error)` is called as each job's result is known. `bound_attention`: see
    `convert`.
    """
    import json
    import tempfile

    from export import child
    global _CONVERTER
    if not jobs:
        return []
    if _CONVERTER is None:
        _CONVERTER = child.Server(["-m", "export.convert", "--serve"], "the converter")
    results = [None] * len(jobs)
    pending = list(range(len(jobs)))
    # The progress file lives beside the outputs: the run directory is then
    # the only place the conversion touches.
    with tempfile.TemporaryDirectory(prefix=".convert-",
                                     dir=os.path.dirname(os.path.abspath(jobs[0][2]))) as tmp:
        progress = os.path.join(tmp, "progress")
        while pending:
            if os.path.exists(progress):
                os.unlink(progress)
            reply, failure = _CONVERTER.request(
                {"cwd": os.getcwd(), "jobs": [list(jobs[i]) for i in pending],
                 "progress": progress, "representative": representative_path,
                 "custom_objects": list(custom_objects or ()),
                 "bound_attention": bound_attention}, timeout * len(pending))
            failure = failure or (reply or {}).get("failure")
            done = []
            if os.path.exists(progress):
                with open(progress) as f:
                    done = [json.loads(line) for line in f if line.strip()]
            for record in done:
                index = pending[record["job"]]
                results[index] = record["error"]
                if on_done:
                    on_done(index, record["error"])
            finished = len(done)
            if finished < len(pending):
                # The child failed during job `finished`: that job fails, the rest retry.
                index = pending[finished]
                results[index] = failure or "the converter stopped without a result"
                if on_done:
                    on_done(index, results[index])
                finished += 1
            pending = pending[finished:]
    return results


def _serve_one(request):
    """A `--serve` request: the jobs of one convert_all_in_child call."""
    import traceback
    os.chdir(request["cwd"])  # the caller's relative paths and custom-object modules
    if request["cwd"] not in sys.path:
        sys.path.insert(0, request["cwd"])
    try:
        run_jobs([tuple(job) for job in request["jobs"]], request["representative"],
                 request["custom_objects"], request["progress"],
                 bound_attention=request["bound_attention"])
        return {}
    except Exception as e:  # pylint: disable=broad-except
        # What a one-shot child's traceback would end with; the next job goes on.
        return {"failure": traceback.format_exception_only(e)[-1].strip()}
    finally:
        from pipeline.backend import keras
        keras.backend.clear_session()  # the next run's models start from a clean graph


def representative_dataset(representative):
    """A converter representative_dataset generator over the examples of `representative`."""
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
    parser.add_argument("--model", help="a model file saved by a stage (models/saved.py)")
    parser.add_argument("--format", choices=FORMATS)
    parser.add_argument("--output", help="the .tflite file to write")
    parser.add_argument("--representative", help=".npy of example inputs (calibrated formats)")
    parser.add_argument("--keep_attention_masks", action="store_true",
                        help="do not bound a -1e9 attention mask before calibrated conversion")
    parser.add_argument("--custom_objects", action="append", default=[],
                        help="a module or .py file defining custom objects of the model "
                             "(repeatable)")
    parser.add_argument("--serve", action="store_true",
                        help="convert the jobs of each JSON request line on stdin, answering "
                             "on --reply_fd (export/child.py's Server)")
    parser.add_argument("--reply_fd", type=int, help="with --serve: the reply pipe")
    args = parser.parse_args(argv)
    if args.serve:
        from export import child
        # TensorFlow and Keras imported before the first request: a runner that
        # starts this child early (start_converter) gets them loaded meanwhile.
        from pipeline.backend import keras, tf  # noqa: F401  pylint: disable=unused-import
        child.serve(_serve_one, args.reply_fd)
        return 0
    if not (args.model and args.format and args.output):
        parser.error("give --model, --format and --output (or --serve)")
    errors = run_jobs([(args.model, args.format, args.output)], args.representative,
                      args.custom_objects, bound_attention=not args.keep_attention_masks)
    for error in filter(None, errors):
        print(f"greenlite: error: {error}", file=sys.stderr)
    return 2 if any(errors) else 0


def run_jobs(jobs, representative_path, custom_object_specs, progress=None,
             bound_attention=True):
    """Converts each job in this process, loading each model once; returns the errors."""
    import json

    import numpy as np

    from pipeline.errors import GreenliteError
    from pipeline.files import atomic_write_bytes
    loaded, errors = {}, []
    representative = np.load(representative_path) if representative_path else None
    for number, (model_path, fmt, output) in enumerate(jobs):
        error = None
        try:
            if model_path not in loaded:
                loaded[model_path] = _load(model_path, custom_object_specs)
            if isinstance(loaded[model_path], GreenliteError):
                raise loaded[model_path]
            flatbuffer = convert(loaded[model_path], fmt,
                                 representative if fmt in CALIBRATED else None, bound_attention)
            atomic_write_bytes(output, flatbuffer)
        except GreenliteError as e:
            error = str(e)
        errors.append(error)
        if progress:
            with open(progress, "a") as f:
                f.write(json.dumps({"job": number, "error": error}) + "\n")
    return errors


def _load(model_path, custom_object_specs):
    """The saved model, or the GreenliteError that loading it gives (kept for its other jobs)."""
    from models import saved, user
    from pipeline.errors import ExportError, GreenliteError
    try:
        objects = {}
        for spec in custom_object_specs:
            objects.update(user.custom_objects_from(spec, "--custom_objects"))
        return saved.load(model_path, objects)
    except GreenliteError as e:
        return e
    except Exception as e:  # h5py, zipfile, Keras: each raises its own
        return ExportError(f"--model: cannot load {model_path!r}: {_first_line(e)}")


if __name__ == "__main__":
    sys.exit(main())
