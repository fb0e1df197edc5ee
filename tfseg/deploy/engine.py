"""Run a TensorRT engine (or, to check the pipeline on a desktop, an ONNX file with onnxruntime).

Standalone: numpy, the TensorRT Python bindings and one CUDA binding (``pycuda``, as on most
JetPack installs, or NVIDIA's ``cuda-python``); Python 3.6 syntax. Works with the TensorRT 8.2
binding API (JetPack 4.6, TX2) and the named-tensor API of TensorRT 8.5+ (JetPack 5.1, Xavier;
10.x).

    runner = open_model("model.engine")      # or "model.onnx" (onnxruntime, CPU)
    outputs = runner(x)                      # x: float32 (1, H, W, 3) -> {"logits": ...}
"""

import os

import numpy as np

ENGINE_EXTENSIONS = (".engine", ".trt", ".plan")


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise RuntimeError(
            "the TensorRT Python bindings are not installed: on a Jetson they come with JetPack "
            "(python3-libnvinfer); on a desktop with an NVIDIA GPU: pip install tensorrt"
        ) from e
    return trt


def trt_major(trt):
    return int(trt.__version__.split(".")[0])


class CudaPycuda:
    """Device memory and a stream through pycuda."""

    def __init__(self):
        import pycuda.autoinit  # noqa: F401  (creates the context)
        import pycuda.driver as cuda

        self.cuda = cuda
        self.stream = cuda.Stream()
        self.stream_handle = self.stream.handle
        self._keep = []

    def alloc(self, nbytes):
        mem = self.cuda.mem_alloc(max(int(nbytes), 1))
        self._keep.append(mem)
        return int(mem)

    def to_device(self, ptr, host):
        self.cuda.memcpy_htod_async(ptr, np.ascontiguousarray(host), self.stream)

    def to_host(self, host, ptr):
        self.cuda.memcpy_dtoh_async(host, ptr, self.stream)

    def synchronize(self):
        self.stream.synchronize()


class CudaPython:
    """Device memory and a stream through NVIDIA's cuda-python (``cuda.bindings`` or ``cuda``)."""

    def __init__(self):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self.rt = cudart
        self.stream = self._check(cudart.cudaStreamCreate())
        self.stream_handle = int(self.stream)
        self._ptrs = []

    def _check(self, result):
        err, rest = result[0], result[1:]
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def alloc(self, nbytes):
        ptr = int(self._check(self.rt.cudaMalloc(max(int(nbytes), 1))))
        self._ptrs.append(ptr)
        return ptr

    def to_device(self, ptr, host):
        host = np.ascontiguousarray(host)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, self.stream))
        self._pending = host  # keep alive until synchronize

    def to_host(self, host, ptr):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, self.stream))

    def synchronize(self):
        self._check(self.rt.cudaStreamSynchronize(self.stream))


def make_cuda():
    """The first CUDA binding that imports: pycuda, then cuda-python."""
    errors = []
    for cls in (CudaPycuda, CudaPython):
        try:
            return cls()
        except ImportError as e:
            errors.append(str(e))
    raise RuntimeError(
        "no CUDA Python binding found (tried pycuda and cuda-python: {}); on a Jetson: "
        "pip3 install pycuda".format("; ".join(errors))
    )


def _np_dtype(trt, dtype):
    table = {
        trt.float32: np.float32,
        trt.float16: np.float16,
        trt.int32: np.int32,
        trt.int8: np.int8,
    }
    if hasattr(trt, "int64"):
        table[trt.int64] = np.int64
    if hasattr(trt, "bool"):
        table[trt.bool] = np.bool_
    return table[dtype]


class TensorRTRunner:
    """Deserialises an engine and runs it on float32 NHWC batches:
    ``runner(x) -> {name: array}``."""

    def __init__(self, path, cuda=None):
        trt = import_tensorrt()
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        with open(path, "rb") as f:
            data = f.read()
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError(
                f"cannot deserialize {path}: engines only load with the TensorRT version and GPU "
                "they were built with; rebuild it on this device with build_engine.py"
            )
        self.context = self.engine.create_execution_context()
        self.cuda = cuda or make_cuda()
        self.named = hasattr(self.engine, "num_io_tensors") and hasattr(
            self.context, "execute_async_v3"
        )
        self.inputs, self.outputs = [], []
        if self.named:
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                shape = tuple(self.engine.get_tensor_shape(name))
                dtype = _np_dtype(trt, self.engine.get_tensor_dtype(name))
                (self.inputs if is_input else self.outputs).append([name, i, shape, dtype])
        else:
            for i in range(self.engine.num_bindings):
                name = self.engine.get_binding_name(i)
                shape = tuple(self.engine.get_binding_shape(i))
                dtype = _np_dtype(trt, self.engine.get_binding_dtype(i))
                bucket = self.inputs if self.engine.binding_is_input(i) else self.outputs
                bucket.append([name, i, shape, dtype])
        if len(self.inputs) != 1:
            raise RuntimeError(f"expected one input tensor, the engine has {len(self.inputs)}")
        self._shape = None
        self._buffers = {}

    @property
    def input_shape(self):
        """(1, H, W, 3); -1 for dynamic dims."""
        return self.inputs[0][2]

    @property
    def output_names(self):
        return [o[0] for o in self.outputs]

    def _prepare(self, shape):
        """Set the input shape and (re)allocate device and host buffers."""
        name, index = self.inputs[0][0], self.inputs[0][1]
        if self.named:
            self.context.set_input_shape(name, shape)
        else:
            self.context.set_binding_shape(index, shape)
        self._buffers = {}
        bindings = [0] * (len(self.inputs) + len(self.outputs))
        for entry in self.inputs + self.outputs:
            tname, i, _, dtype = entry
            if self.named:
                tshape = tuple(self.context.get_tensor_shape(tname))
            else:
                tshape = tuple(self.context.get_binding_shape(i))
            host = np.empty(tshape, dtype=dtype)
            ptr = self.cuda.alloc(host.nbytes)
            self._buffers[tname] = (host, ptr)
            bindings[i] = ptr
            if self.named:
                self.context.set_tensor_address(tname, ptr)
        self._bindings = bindings
        self._shape = shape

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=self.inputs[0][3])
        if self._shape != x.shape:
            self._prepare(x.shape)
        in_name = self.inputs[0][0]
        self.cuda.to_device(self._buffers[in_name][1], x)
        if self.named:
            self.context.execute_async_v3(self.cuda.stream_handle)
        else:
            self.context.execute_async_v2(self._bindings, self.cuda.stream_handle)
        for name, _, _, _ in self.outputs:
            host, ptr = self._buffers[name]
            self.cuda.to_host(host, ptr)
        self.cuda.synchronize()
        return {name: self._buffers[name][0].copy() for name, _, _, _ in self.outputs}


class OnnxRuntimeRunner:
    """The same interface over onnxruntime, to check pre/post-processing without a GPU."""

    def __init__(self, path, threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self._name = inp.name
        self._shape = tuple(d if isinstance(d, int) else -1 for d in inp.shape)
        self._outputs = [o.name for o in self.session.get_outputs()]

    @property
    def input_shape(self):
        return self._shape

    @property
    def output_names(self):
        return list(self._outputs)

    def __call__(self, x):
        values = self.session.run(None, {self._name: np.asarray(x, dtype=np.float32)})
        return dict(zip(self._outputs, values))


def open_model(path, threads=None):
    """A runner for ``path``: TensorRT for .engine/.trt/.plan, onnxruntime for .onnx."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".onnx":
        return OnnxRuntimeRunner(path, threads=threads)
    if ext in ENGINE_EXTENSIONS:
        return TensorRTRunner(path)
    raise ValueError(
        "unknown model file {}: expected a TensorRT engine ({}) or an ONNX file".format(
            path, "/".join(ENGINE_EXTENSIONS)
        )
    )


def fixed_input_size(shape):
    """(H, W) of a (1, H, W, 3) input shape, or None when H or W is dynamic."""
    if len(shape) != 4 or shape[3] != 3:
        raise ValueError(f"expected an NHWC input with 3 channels, got {shape}")
    h, w = shape[1], shape[2]
    if h is None or w is None or int(h) < 0 or int(w) < 0:
        return None
    return int(h), int(w)
