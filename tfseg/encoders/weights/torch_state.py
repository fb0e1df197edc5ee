"""PyTorch checkpoints (torchvision / timm state dicts) for the encoders that share their layout.

Supported encoders and the PyTorch model whose ``state_dict`` they read (tensor names as
torchvision writes them; a common prefix such as ``module.``, ``encoder.`` or ``backbone.`` is
found and dropped, and a checkpoint that wraps the state dict under ``state_dict`` / ``model`` is
unwrapped):

- ``resnet18``: torchvision ``resnet18()`` (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
  ``layer2.0.downsample.0/1``). timm's ``resnet18`` uses the same names.
- ``resnet50`` / ``resnet101`` built with ``layout="torchvision"``: torchvision ``resnet50()`` /
  ``resnet101()`` (ResNet v1.5; timm's ``resnet50`` / ``resnet101`` use the same names). The
  default keras-applications layout (stride on the 1x1 convolution, conv biases) cannot take them
  and is refused with the hint to build the encoder with ``layout="torchvision"``.
- ``vgg16``: torchvision ``vgg16().features`` (``features.0`` ... ``features.28``; 3x3 "same"
  convolutions with bias, 2x2 max-pools: tfseg's VGG16 is the same network).
- ``mobilenetv2`` built with ``layout="torchvision"``: torchvision ``mobilenet_v2().features``
  (``features.0.0`` ... ``features.18``; ``features.18`` is the 1x1 convolution to 1280 channels,
  loaded with ``include_last_conv=True`` and reported unused otherwise). The keras layout pads its
  strided convolutions asymmetrically, which shifts the features: refused with the same hint.

Not supported: ``mobilenet`` (v1), ``shufflenet``, ``stdc1``, ``stdc2`` (no torchvision model;
see ``docs/usage.md`` for what exists elsewhere and why it is not read here).

Conversions: ``Conv2d`` weights ``(O, I, kh, kw)`` -> Keras ``(kh, kw, I, O)``; depthwise weights
``(C * m, 1, kh, kw)`` -> ``DepthwiseConv2D`` ``(kh, kw, C, m)``; ``BatchNorm2d`` ``weight``,
``bias``, ``running_mean``, ``running_var`` -> ``gamma``, ``beta``, ``moving_mean``,
``moving_variance``. Every tensor the encoder does not use (``num_batches_tracked``, the
classifier ``fc`` / ``classifier``, ...) is listed in the report's ``skipped``; every tensor the
encoder needs but the file lacks in ``missing`` (those layers keep their weights, and a warning
names them). A tensor whose shape does not fit refuses the whole file, naming the first one.

BatchNorm epsilon: PyTorch uses 1e-5. The torchvision layouts of resnet50/101 and mobilenetv2 are
built with it; ``resnet18`` (whose blocks use tfseg's 1e-3) gets the epsilon of its BatchNorm layers
set to 1e-5 by :func:`match_torch_epsilon` when such a file is loaded, and the report's ``notes``
say so (a 1e-3 epsilon would change the features by about 1e-3 relative).

Input normalisation: torchvision's and timm's ImageNet models take RGB in [0, 1] normalised with
mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225): exactly what ``tfseg.data.normalize``
feeds (:data:`~tfseg.encoders.weights.common.IMAGENET_MEAN` / ``IMAGENET_STD``), so the first
convolution is loaded as it is, without adaptation.

``.safetensors`` files are read with numpy alone (the format: an 8-byte little-endian header length,
a JSON header giving each tensor's dtype, shape and byte range, then the raw little-endian data);
``.pth`` / ``.pt`` / ``.bin`` files are pickles and need PyTorch (``torch.load(...,
weights_only=True)``). Checked against the safetensors format description (huggingface/safetensors
README) and torchvision's ``resnet.py``, ``vgg.py`` and ``mobilenetv2.py`` module layouts.
"""

import json
import math
import os
import re
import warnings

import keras
import numpy as np

from tfseg.encoders.weights.common import encoder_layers

TORCH_EXTENSIONS = (".pth", ".pt", ".bin")
SAFETENSORS_EXTENSION = ".safetensors"
TORCH_BN_EPSILON = 1e-5
# encoder -> the encoder kwargs its torchvision layout needs (besides the defaults)
TORCH_ENCODERS = {
    "resnet18": {},
    "resnet50": {"layout": "torchvision"},
    "resnet101": {"layout": "torchvision"},
    "vgg16": {},
    "mobilenetv2": {"layout": "torchvision"},
}
_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
# torchvision vgg16().features: index of the first module of each block (conv, ReLU pairs, pool)
_VGG_BLOCK_START = (0, 5, 10, 17, 24)


def is_torch_path(path):
    """Whether ``path`` names a PyTorch checkpoint (.pth, .pt, .bin, .safetensors)."""
    return path.endswith(TORCH_EXTENSIONS + (SAFETENSORS_EXTENSION,))


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------


def read_state_dict(path):
    """``{tensor name: numpy array}`` of a ``.safetensors`` or ``.pth``/``.pt``/``.bin`` file."""
    if path.endswith(SAFETENSORS_EXTENSION):
        return read_safetensors(path)
    return read_torch_checkpoint(path)


def read_safetensors(path):
    """Read a ``.safetensors`` file with numpy (no PyTorch, no ``safetensors`` package)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        header_size = int.from_bytes(head, "little") if len(head) == 8 else 0
        if header_size <= 0 or 8 + header_size > size:
            raise ValueError(
                f"{path} is not a safetensors file: its first 8 bytes give a header length of "
                f"{header_size} for a file of {size} bytes (truncated or another format?)"
            )
        try:
            header = json.loads(f.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a safetensors file: bad JSON header ({e})") from None
        data = f.read()
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file: the header is not a JSON object")
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: bad safetensors header entry for tensor {name!r}") from None
        if dtype != "BF16" and dtype not in _SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not 0 <= begin <= end <= len(data):
            raise ValueError(
                f"{path}: tensor {name!r} lies beyond the end of the file (bytes {begin}-{end} of "
                f"{len(data)}): the file is truncated"
            )
        raw = data[begin:end]
        if dtype == "BF16":  # the upper half of a float32
            array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, _SAFETENSORS_DTYPES[dtype])
        if array.size != math.prod(shape):
            raise ValueError(
                f"{path}: tensor {name!r} holds {array.size} values, its shape {shape} needs "
                f"{math.prod(shape)}"
            )
        if array.dtype.kind == "f":  # as read_torch_checkpoint: every float as float32
            array = array.astype(np.float32)
        tensors[name] = array.reshape(shape)
    return tensors


def read_torch_checkpoint(path):
    """Read a PyTorch pickle (``torch.load(path, map_location="cpu", weights_only=True)``)."""
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"reading the PyTorch checkpoint {path} needs PyTorch: pip install torch (the CPU "
            "build is enough: --index-url https://download.pytorch.org/whl/cpu). Or convert it "
            "once where torch is installed to .safetensors, which tfseg reads without PyTorch: "
            'python -c "import torch, safetensors.torch as st; '
            "st.save_file(torch.load('x.pth'), 'x.safetensors')\""
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {first}); "
            "save the model's state_dict(), not the module"
        ) from None
    state = _unwrap_state_dict(obj, path, torch)
    arrays = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()
        arrays[name] = tensor.numpy()
    return arrays


def _unwrap_state_dict(obj, path, torch):
    """The ``{name: tensor}`` dict in a checkpoint (training checkpoints nest it)."""
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return tensors
        for key in ("state_dict", "model", "model_state_dict", "module", "state_dict_ema"):
            if isinstance(obj.get(key), dict):
                return _unwrap_state_dict(obj[key], path, torch)
        if tensors:
            return tensors
        keys = ", ".join(map(str, list(obj)[:5]))
        raise ValueError(f"{path} holds no state dict of tensors (its top-level keys: {keys})")
    raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")


# --------------------------------------------------------------------------------------------------
# Layer names: tfseg (Keras) -> torchvision module
# --------------------------------------------------------------------------------------------------


def _resnet_module(suffix):
    if suffix == "conv1_conv":
        return "conv1"
    if suffix == "conv1_bn":
        return "bn1"
    m = re.fullmatch(r"conv(\d)_block(\d+)_(\d)_(conv|bn)", suffix)
    if m is None:
        return None
    stage, block, index, kind = int(m[1]), int(m[2]), int(m[3]), m[4]
    base = f"layer{stage - 1}.{block - 1}"
    if index == 0:
        return f"{base}.downsample.{0 if kind == 'conv' else 1}"
    return f"{base}.{kind}{index}"


def _vgg_module(suffix):
    m = re.fullmatch(r"block(\d)_conv(\d)", suffix)
    if m is None:
        return None
    return f"features.{_VGG_BLOCK_START[int(m[1]) - 1] + 2 * (int(m[2]) - 1)}"


def _mobilenetv2_module(suffix):
    fixed = {
        "Conv1": "features.0.0",
        "bn_Conv1": "features.0.1",
        "expanded_conv_depthwise": "features.1.conv.0.0",
        "expanded_conv_depthwise_BN": "features.1.conv.0.1",
        "expanded_conv_project": "features.1.conv.1",
        "expanded_conv_project_BN": "features.1.conv.2",
        "Conv_1": "features.18.0",
        "Conv_1_bn": "features.18.1",
    }
    if suffix in fixed:
        return fixed[suffix]
    m = re.fullmatch(r"block_(\d+)_(expand|depthwise|project)(_BN)?", suffix)
    if m is None:
        return None
    part = {"expand": "conv.0", "depthwise": "conv.1", "project": None}[m[2]]
    base = f"features.{int(m[1]) + 1}"
    if part is None:  # the projection is a bare conv (conv.2) and a BN (conv.3)
        return f"{base}.conv.{3 if m[3] else 2}"
    return f"{base}.{part}.{1 if m[3] else 0}"


_MODULE_NAMES = {
    "resnet18": _resnet_module,
    "resnet50": _resnet_module,
    "resnet101": _resnet_module,
    "vgg16": _vgg_module,
    "mobilenetv2": _mobilenetv2_module,
}


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def check_torch_encoder(encoder_name, encoder_kwargs, path):
    """Refuse encoders (or encoder kwargs) whose layout differs from torchvision's."""
    if encoder_name not in TORCH_ENCODERS:
        raise ValueError(
            f"{path}: PyTorch checkpoints are supported for {', '.join(TORCH_ENCODERS)} "
            f"(torchvision layouts), not for encoder {encoder_name!r}; for it only Keras 3 "
            ".weights.h5 files (tools/export_encoder_weights.py) are supported"
        )
    for key, value in TORCH_ENCODERS[encoder_name].items():
        if encoder_kwargs.get(key) != value:
            raise ValueError(
                f"{path}: encoder {encoder_name!r} with {key}={encoder_kwargs.get(key, 'keras')!r}"
                f" does not have the torchvision layout of a PyTorch checkpoint; build it with "
                f'--encoder_kwargs=\'{{"{key}": "{value}"}}\' (Python: '
                f'encoder_kwargs={{"{key}": "{value}"}})'
            )


def _kind(layer):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, keras.layers.Conv2D):
        return "conv"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "bn"
    raise TypeError(f"no PyTorch conversion for layer {layer.name!r} ({type(layer).__name__})")


def _torch_tensors(kind, layer, module, keras_shapes):
    """``[(torch tensor name, expected torch shape)]`` in the order of ``layer.get_weights()``."""
    if kind == "bn":
        names = []
        if layer.scale:
            names.append("weight")
        if layer.center:
            names.append("bias")
        names += ["running_mean", "running_var"]
        return [(f"{module}.{n}", tuple(s)) for n, s in zip(names, keras_shapes)]
    kh, kw, c_in, c_out = keras_shapes[0]  # depthwise: (kh, kw, C, multiplier)
    if kind == "depthwise":
        weight = (c_in * c_out, 1, kh, kw)
    else:
        weight = (c_out, c_in, kh, kw)
    tensors = [(f"{module}.weight", weight)]
    if len(keras_shapes) > 1:
        tensors.append((f"{module}.bias", tuple(keras_shapes[1])))
    return tensors


def _to_keras(kind, array, keras_shape):
    if kind == "bn" or array.ndim == 1:
        return array
    if kind == "depthwise":
        kh, kw, channels, multiplier = keras_shape
        return array.reshape(channels, multiplier, kh, kw).transpose(2, 3, 0, 1)
    return array.transpose(2, 3, 1, 0)


def _find_prefix(state, first_name, expected):
    """The common prefix of the checkpoint's names (``""``, ``module.``, ``encoder.``...)."""
    candidates = {""}
    for key in state:
        if key.endswith("." + first_name):
            candidates.add(key[: -len(first_name)])
    return max(sorted(candidates, key=len), key=lambda p: sum(p + n in state for n in expected))


def _sample_names(state, n=3):
    """A few tensor names of a state dict, BatchNorm's batch counters left out."""
    return [k for k in state if not k.endswith("num_batches_tracked")][:n]


class TorchLoad:
    """What :func:`load_torch_weights` did: ``unused`` and ``missing`` tensor names (checkpoint
    names, as in the file), ``not_loaded`` (Keras layer suffixes left as they were)."""

    def __init__(self, unused, missing, not_loaded):
        self.unused, self.missing, self.not_loaded = tuple(unused), tuple(missing), not_loaded


def load_torch_weights(reference, encoder_name, path, encoder_kwargs):
    """Set the standalone encoder ``reference`` from a PyTorch checkpoint; a :class:`TorchLoad`."""
    check_torch_encoder(encoder_name, encoder_kwargs, path)
    state = read_state_dict(path)
    layers = encoder_layers(reference, encoder_name)
    plan = []  # (suffix, layer, kind, [(torch name, torch shape)])
    for suffix, layer in layers.items():
        module = _MODULE_NAMES[encoder_name](suffix)
        if module is None:
            raise RuntimeError(f"no torchvision name for layer {suffix!r} of {encoder_name!r}")
        kind = _kind(layer)
        keras_shapes = [tuple(w.shape) for w in layer.weights]
        plan.append((suffix, layer, kind, _torch_tensors(kind, layer, module, keras_shapes)))
    expected = [name for *_, tensors in plan for name, _ in tensors]
    prefix = _find_prefix(state, expected[0], expected)
    if not any(prefix + name in state for name in expected):
        raise ValueError(
            f"{path} holds none of the tensors of encoder {encoder_name!r} in the torchvision "
            f"layout (such as {expected[0]!r}); its tensors are named like "
            f"{', '.join(_sample_names(state)) or '(none)'}"
        )
    used, missing, not_loaded, values = set(), [], set(), {}
    for suffix, layer, kind, tensors in plan:
        arrays = []
        for name, torch_shape in tensors:
            key = prefix + name
            if key not in state:
                missing.append(key)
                continue
            got = tuple(state[key].shape)
            if got != torch_shape:
                raise ValueError(
                    f"{path}: tensor {key!r} has shape {got}, but layer "
                    f"{f'{encoder_name}_{suffix}'!r} of encoder {encoder_name!r} (kwargs "
                    f"{encoder_kwargs or {}}) needs {torch_shape}: a checkpoint of another model "
                    "or width?"
                )
            arrays.append((key, state[key]))
        if len(arrays) < len(tensors):
            not_loaded.add(suffix)
            continue
        used.update(key for key, _ in arrays)
        keras_shapes = [tuple(w.shape) for w in layer.weights]
        values[suffix] = [
            _to_keras(kind, np.asarray(a, "float32"), s) for (_, a), s in zip(arrays, keras_shapes)
        ]
    for suffix, weights in values.items():  # only once every shape is known to fit
        layers[suffix].set_weights(weights)
    if missing:
        warnings.warn(
            f"{path} lacks {len(missing)} tensor(s) of encoder {encoder_name!r}, whose layers "
            f"keep their weights: {', '.join(missing)}",
            stacklevel=3,
        )
    unused = [key for key in state if key not in used]
    return TorchLoad(unused, missing, not_loaded)


def match_torch_epsilon(layers):
    """Set the epsilon of the BatchNorm layers among ``layers`` to PyTorch's 1e-5; returns the
    report notes (one line, naming how many layers changed), empty when none did."""
    changed = []
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            if layer.epsilon != TORCH_BN_EPSILON:
                changed.append((layer.name, layer.epsilon))
                layer.epsilon = TORCH_BN_EPSILON
    if not changed:
        return ()
    olds = sorted({eps for _, eps in changed})
    return (
        f"BatchNormalization epsilon set to PyTorch's {TORCH_BN_EPSILON:g} (was "
        f"{', '.join(f'{e:g}' for e in olds)}) in {len(changed)} layers, e.g. {changed[0][0]!r}",
    )
