"""Build a TensorRT engine from a tfseg ONNX file, on the device that will run it.

    python3 build_engine.py --onnx model.onnx --engine model.engine --precision fp16
    python3 build_engine.py --onnx model.onnx --engine model_int8.engine --precision int8 \\
        --calib_images calib/ --calib_cache model.calib --timing_cache timing.cache

FP32 / FP16 / INT8 (INT8 needs a GPU with INT8 units: Xavier yes, TX2 no; calibration reads a
folder of images, preprocessed exactly like tfseg, and writes a calibration cache that later builds
and ``trtexec --int8 --calib=...`` reuse). ``--workspace_mb`` caps the builder's scratch memory;
``--timing_cache`` makes rebuilds much faster. An ONNX file with dynamic H/W needs ``--input_size``.

Standalone: numpy, TensorRT, pycuda or cuda-python (INT8 calibration only), PIL/OpenCV (INT8
calibration only); Python 3.6 syntax (JetPack 4.6 and 5.1).
"""

import argparse
import os
import sys
import time

import numpy as np

if __package__:
    from . import common
    from . import engine as engine_lib
else:  # run as a script from this folder on the device
    import common
    import engine as engine_lib


def _calibrator_class(trt):
    """An ``IInt8EntropyCalibrator2`` over a folder of images (defined lazily: needs TensorRT)."""

    class ImageCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self, files, input_shape, cache_path, stride=32, cuda=None):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.files = list(files)
            self.shape = tuple(int(d) for d in input_shape)
            self.cache_path = cache_path
            self.stride = stride
            self.index = 0
            self.cuda = cuda
            self.ptr = None

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.index >= len(self.files):
                return None
            if self.cuda is None:
                self.cuda = engine_lib.make_cuda()
            if self.ptr is None:
                self.ptr = self.cuda.alloc(int(np.prod(self.shape)) * 4)
            image = common.read_image(self.files[self.index])
            x = common.preprocess(image, self.stride, self.shape[1:3])
            if x.shape != self.shape:
                raise RuntimeError(
                    f"calibration input {x.shape} does not fit the network input {self.shape}"
                )
            self.cuda.to_device(self.ptr, x)
            self.cuda.synchronize()
            self.index += 1
            if self.index % 10 == 0:
                print(f"  calibrated on {self.index} / {len(self.files)} images")
            return [int(self.ptr)]

        def read_calibration_cache(self):
            if self.cache_path and os.path.exists(self.cache_path):
                with open(self.cache_path, "rb") as f:
                    print(f"using calibration cache {self.cache_path}")
                    return f.read()
            return None

        def write_calibration_cache(self, cache):
            if self.cache_path:
                with open(self.cache_path, "wb") as f:
                    f.write(bytes(cache))
                print(f"wrote calibration cache {self.cache_path}")

    return ImageCalibrator


def _parse_size(text):
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) != 2 or min(parts) <= 0:
        raise ValueError(f"size must look like HxW, got {text!r}")
    return tuple(parts)


def build_engine(onnx_path, engine_path, precision="fp16", workspace_mb=1024, calib_images=None,
                 calib_cache=None, calib_count=100, timing_cache=None, input_size=None, stride=32,
                 verbose=False):  # fmt: skip
    """Parse ``onnx_path``, build an engine and write it to ``engine_path``; returns a summary
    dict."""
    trt = engine_lib.import_tensorrt()
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision must be fp32, fp16 or int8, got {precision!r}")
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if engine_lib.trt_major(trt) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as f:
        if not parser.parse(f.read()):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise RuntimeError(
                "TensorRT cannot parse {}:\n  {}".format(onnx_path, "\n  ".join(errors))
            )
    config = builder.create_builder_config()
    workspace = int(workspace_mb) << 20
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:
        config.max_workspace_size = workspace

    inp = network.get_input(0)
    shape = tuple(inp.shape)
    if any(d < 0 for d in shape):
        if input_size is None:
            raise ValueError(
                f"{onnx_path} has a dynamic input shape {shape}; pass --input_size HxW"
            )
        shape = (1, int(input_size[0]), int(input_size[1]), 3)
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, shape, shape, shape)
        config.add_optimization_profile(profile)
        if precision == "int8":
            config.set_calibration_profile(profile)

    if precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            print("warning: this GPU has no fast FP16; the engine may be slow", file=sys.stderr)
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if not builder.platform_has_fast_int8:
            raise RuntimeError("this GPU has no INT8 support (e.g. Jetson TX2): use fp16")
        config.set_flag(trt.BuilderFlag.INT8)
        files = []
        if calib_images:
            _, files = common.find_inputs(calib_images)
            files = files[: int(calib_count)]
        if not files and not (calib_cache and os.path.exists(calib_cache)):
            raise ValueError(
                "int8 needs --calib_images (a folder of images) or an existing --calib_cache"
            )
        config.int8_calibrator = _calibrator_class(trt)(files, shape, calib_cache, stride)

    cache = None
    if timing_cache:
        data = b""
        if os.path.exists(timing_cache):
            with open(timing_cache, "rb") as f:
                data = f.read()
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, False)

    start = time.time()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see the log above)")
    tmp = engine_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(bytes(serialized))
    os.replace(tmp, engine_path)
    if timing_cache:
        with open(timing_cache, "wb") as f:
            f.write(bytes(config.get_timing_cache().serialize()))
    return {
        "engine": engine_path,
        "tensorrt": trt.__version__,
        "precision": precision,
        "input_shape": list(shape),
        "build_seconds": time.time() - start,
        "bytes": os.path.getsize(engine_path),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description="Build a TensorRT engine from a tfseg ONNX file.")
    p.add_argument(
        "--onnx", required=True, help="ONNX file from python -m tfseg.export --format=onnx"
    )
    p.add_argument("--engine", required=True, help="output engine file (.engine)")
    p.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "int8"])
    p.add_argument("--workspace_mb", type=int, default=1024, help="builder workspace (MiB)")
    p.add_argument("--calib_images", help="folder of images for INT8 calibration")
    p.add_argument("--calib_cache", help="INT8 calibration cache to read / write")
    p.add_argument("--calib_count", type=int, default=100, help="calibration images to use")
    p.add_argument("--timing_cache", help="timing cache file to read / write")
    p.add_argument("--input_size", help="HxW for an ONNX file with dynamic H/W")
    p.add_argument("--stride", type=int, default=32, help="model input stride (padding)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    try:
        summary = build_engine(
            args.onnx,
            args.engine,
            precision=args.precision,
            workspace_mb=args.workspace_mb,
            calib_images=args.calib_images,
            calib_cache=args.calib_cache,
            calib_count=args.calib_count,
            timing_cache=args.timing_cache,
            input_size=_parse_size(args.input_size) if args.input_size else None,
            stride=args.stride,
            verbose=args.verbose,
        )
    except (RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        "wrote {engine} (TensorRT {tensorrt}, {precision}, input {input_shape}, "
        "{build_seconds:.0f} s, {bytes} bytes)".format(**summary)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
