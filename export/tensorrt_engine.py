"""TensorRT engines from greenlite's ONNX files, where a CUDA GPU is.

TensorFlow's own TensorRT integration is gone (TF-TRT: TF 2.17 was its last
release); the path that works is ONNX -> TensorRT's Python builder (the pip
wheel has no trtexec). FP16 engines come from onnx_float32 with FP16 kernels
allowed; INT8 engines from onnx_int8's QDQ file (explicit quantization: the
file's own scales, no TensorRT calibrator).

    check_gpu("tensorrt_fp16")          # raises ExportError: "needs a CUDA GPU ..."
    engine = build(onnx_bytes, "tensorrt_int8")

Building and running an engine needs a CUDA GPU and driver: on a machine
without one `check_gpu` raises one line and the run's other variants go on.
This module has not been run on a GPU yet (none was lent to this work): the
tests that need one skip, saying so (BUILD_NOTES.md, "ONNX and TensorRT").
"""
import ctypes
import ctypes.util

# The largest batch an engine's optimization profile admits (batch 1 is its optimum).
MAX_BATCH = 64


def gpu_problem():
    """Why no TensorRT engine can be built here (None where a CUDA GPU and TensorRT are)."""
    driver = None
    for name in ("libcuda.so.1", ctypes.util.find_library("cuda")):
        if not name:
            continue
        try:
            driver = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if driver is None:
        return "no CUDA driver on this machine (libcuda.so.1 not found)"
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0 \
            or count.value == 0:
        return "the CUDA driver finds no GPU on this machine"
    try:
        import tensorrt  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        return "TensorRT is not installed (pip install tensorrt)"
    return None


def check_gpu(fmt: str) -> None:
    """Raises ExportError naming what is missing unless a TensorRT engine can be built."""
    from pipeline.errors import ExportError
    problem = gpu_problem()
    if problem:
        raise ExportError(f"{fmt} needs a CUDA GPU: {problem}; the other variants go on")


def build(onnx_bytes: bytes, fmt: str) -> bytes:
    """A serialized TensorRT engine of an ONNX file: FP16 kernels allowed for
    tensorrt_fp16, the QDQ file's int8 for tensorrt_int8; batch 1 to MAX_BATCH."""
    import tensorrt as trt

    from pipeline.errors import ExportError
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: TensorRT 10's only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise ExportError(f"{fmt}: TensorRT cannot parse the ONNX file: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    if fmt == "tensorrt_int8":
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    for k in range(network.num_inputs):
        tensor = network.get_input(k)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1,) + rest, (1,) + rest, (MAX_BATCH,) + rest)
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError(f"{fmt}: TensorRT built no engine (its log above says why)")
    return bytes(engine)


def versions() -> dict:
    """The GPU, driver and TensorRT versions an engine was built with."""
    import subprocess

    import tensorrt as trt
    query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version",
                            "--format=csv,noheader"], capture_output=True, text=True,
                           check=False)
    name, _, driver = query.stdout.strip().splitlines()[0].partition(", ") \
        if query.returncode == 0 and query.stdout.strip() else ("unknown", "", "unknown")
    return {"gpu": name, "driver": driver, "tensorrt": trt.__version__}
