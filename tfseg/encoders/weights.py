"""Encoder weights: load them into any model that holds an encoder, and extract them from one.

Sources ``load_encoder_weights`` accepts (the path's ending picks the loader):

- ``*.weights.h5``: a Keras 3 weights file of the standalone encoder (``build_encoder_model``), as
  written by ``export_encoder_weights`` / ``tools/export_encoder_weights.py``. Any encoder.
- ``*.h5``: a legacy keras-applications file (``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``,
  ``resnet50_..._notop.h5``, ``resnet101_..._notop.h5``, ``mobilenet_1_0_224_tf_no_top.h5``; the
  include-top variants too, their classifier layers are skipped) for vgg16, resnet50, resnet101 and
  mobilenet, read with h5py and matched by keras-applications layer name.
- ``"imagenet"``: the same legacy file fetched into the Keras cache (``~/.keras/models``) with
  ``keras.utils.get_file``; needs the network unless the file is already cached.

Input normalisation. tfseg feeds encoders images normalised with the ImageNet mean/std
(:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`, RGB in [0, 1]). The keras-applications weights expect
other inputs: "caffe" mode (VGG16, ResNet50/101: BGR, 0-255, minus a per-channel mean) and "tf" mode
(MobileNet: RGB scaled to [-1, 1]). Both are per-channel affine maps of the tfseg input, so with
``adapt_input=True`` (the default) the first convolution is rewritten to take the tfseg input
(kernel scaled per input channel, and for caffe mode flipped to RGB; the offset folded into the conv
bias or, for MobileNet, into ``conv1_bn``'s moving mean). The result is exact away from the image
border; on the border pixels the zero padding stands for the mean colour instead of the source's
zero, a difference of a fraction of a grey level for caffe mode and of the padding colour for
MobileNet. ``.weights.h5`` files hold tfseg-trained weights and are never adapted.
"""

import contextlib
import os
import re
import socket
import warnings

import h5py
import keras
import numpy as np

from tfseg.encoders.core import build_encoder_model
from tfseg.registry import ENCODERS
from tfseg.files import atomic_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

_KERAS_APPS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
# encoder -> (preprocessing mode of its keras-applications weights, first-conv layer, its BN or None)
LEGACY_ENCODERS = {
    "vgg16": ("caffe", "block1_conv1", None),
    "resnet50": ("caffe", "conv1_conv", None),
    "resnet101": ("caffe", "conv1_conv", None),
    "mobilenet": ("tf", "conv1", "conv1_bn"),
}
# Published md5 of the no-top files (keras-applications); None: not published.
_NOTOP_MD5 = {
    "vgg16": "6d6bbae143d832006294945121d1f1fc",
    "resnet50": "4d473c1dd8becc155b73f8504c6f6626",
    "resnet101": "88cf7a10940856eca736dc7b7e228a21",
}
_MOBILENET_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
_DOWNLOAD_SOCKET_TIMEOUT_S = 30


class LoadReport(int):
    """The number of weight tensors loaded (an ``int``), with details as attributes.

    Attributes: ``tensors``, ``layers`` (layers loaded), ``skipped`` (layer names in the source that
    the encoder does not have, e.g. a classifier), ``source`` (the file read).
    """

    def __new__(cls, tensors, layers, skipped=(), source=None):
        obj = super().__new__(cls, tensors)
        obj.tensors = int(tensors)
        obj.layers = int(layers)
        obj.skipped = tuple(skipped)
        obj.source = source
        return obj

    def __repr__(self):
        return (
            f"LoadReport(tensors={self.tensors}, layers={self.layers}, "
            f"skipped={len(self.skipped)}, source={self.source!r})"
        )


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


def legacy_file_name(encoder_name, *, include_top=False, alpha=1.0, **_):
    """File name of the keras-applications ImageNet weights for ``encoder_name``."""
    if encoder_name not in LEGACY_ENCODERS:
        raise ValueError(
            f"there are no keras-applications ImageNet weights for encoder {encoder_name!r}; "
            f"they exist for: {', '.join(sorted(LEGACY_ENCODERS))}. Pass a Keras 3 .weights.h5 "
            "file (written by tools/export_encoder_weights.py) instead"
        )
    if encoder_name == "mobilenet":
        alpha_text = _MOBILENET_ALPHA_TEXT.get(float(alpha))
        if alpha_text is None:
            raise ValueError(
                f"keras-applications has ImageNet weights for mobilenet alpha in "
                f"{sorted(_MOBILENET_ALPHA_TEXT)}, not {alpha}"
            )
        return f"mobilenet_{alpha_text}_224_tf{'' if include_top else '_no_top'}.h5"
    return f"{encoder_name}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"


def load_encoder_weights(
    model, encoder_name, path, *, prefix=None, adapt_input=True, **encoder_kwargs
):
    """Load encoder weights into every layer of ``model`` that belongs to the encoder.

    Args:
      model: a full tfseg model, a standalone encoder (``build_encoder_model``), or any model that
        holds the encoder's layers (nested models are searched too).
      encoder_name: registered encoder name (``tfseg.list_encoders()``).
      path: ``*.weights.h5`` (Keras 3, standalone encoder), ``*.h5`` (legacy keras-applications file,
        vgg16/resnet50/resnet101/mobilenet) or ``"imagenet"`` (download into the Keras cache).
      prefix: layer-name prefix of the encoder inside ``model`` (default ``encoder_name``, which is
        what ``build_model`` uses).
      adapt_input: for keras-applications weights, rewrite the first convolution so that it takes
        ImageNet mean/std-normalised RGB input as tfseg feeds it (see the module docstring).
      **encoder_kwargs: the encoder's hyper-parameters (``alpha=0.5``, ``groups=3``, ...), as the
        model was built with; ``output_stride`` may be passed and does not change the weights.

    Returns:
      A :class:`LoadReport`: the number of tensors loaded (an int) with ``.layers``, ``.skipped``.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file does not fit the encoder (the message names the layer), the extension is
        unknown, or a legacy file is given for an encoder without keras-applications weights.
      RuntimeError: ``"imagenet"`` and the download failed (the message names the file to fetch).
    """
    ENCODERS.get(encoder_name)  # unknown names fail with the choices
    prefix = prefix or encoder_name
    path = os.fspath(path)
    if path == "imagenet":
        path = _fetch_imagenet_file(encoder_name, encoder_kwargs)
        kind = "legacy"
    elif path.endswith(".weights.h5"):
        kind = "keras"
    elif path.endswith(".h5"):
        if encoder_name not in LEGACY_ENCODERS:
            raise ValueError(
                f"{path}: legacy .h5 weights are only supported for "
                f"{', '.join(sorted(LEGACY_ENCODERS))} (keras-applications files); for encoder "
                f"{encoder_name!r} only Keras 3 .weights.h5 files (e.g. written by "
                "tools/export_encoder_weights.py) are supported"
            )
        kind = "legacy"
    else:
        raise ValueError(
            f"{path}: unknown weights format; expected a path ending in .weights.h5 (Keras 3), "
            ".h5 (legacy keras-applications) or the word 'imagenet'"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"encoder weights file not found: {path}")

    reference = build_encoder_model(encoder_name, **encoder_kwargs)
    skipped = ()
    if kind == "keras":
        _load_keras_weights(reference, encoder_name, path, encoder_kwargs)
    else:
        skipped = _load_legacy_weights(reference, encoder_name, path)
        if adapt_input:
            _adapt_first_conv(reference, encoder_name)
    pairs = _pair_layers(reference, encoder_name, model, prefix)
    tensors, layers_loaded = _copy_weights(pairs, into_model=True)
    return LoadReport(tensors, layers_loaded, skipped, path)


def export_encoder_weights(model, encoder_name, output, *, prefix=None, encoder_kwargs=None):
    """Write the encoder part of a trained model as a standalone Keras 3 ``.weights.h5`` file.

    Args:
      model: a ``keras.Model`` or the path of a ``.keras`` file holding the encoder's layers.
      encoder_name: registered encoder name.
      output: destination, ending in ``.weights.h5``; written atomically (temporary file + rename).
      prefix: layer-name prefix of the encoder inside ``model`` (default ``encoder_name``).
      encoder_kwargs: the encoder's hyper-parameters the model was built with.

    Returns:
      A :class:`LoadReport` of the tensors copied out. The file loads back with
      ``load_encoder_weights(model, encoder_name, output, **encoder_kwargs)``.
    """
    output = os.fspath(output)
    if not output.endswith(".weights.h5"):
        raise ValueError(f"output must end with .weights.h5, got {output}")
    encoder_kwargs = dict(encoder_kwargs or {})
    source = None
    if not isinstance(model, keras.Model):
        source = os.fspath(model)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"model file not found: {source}")
        model = keras.saving.load_model(source, compile=False)
    prefix = prefix or encoder_name
    reference = build_encoder_model(encoder_name, **encoder_kwargs)
    pairs = _pair_layers(reference, encoder_name, model, prefix)
    tensors, layers_loaded = _copy_weights(pairs, into_model=False)
    with atomic_path(output, suffix=".weights.h5") as tmp:
        reference.save_weights(tmp)
    return LoadReport(tensors, layers_loaded, (), source)


# ---------------------------------------------------------------------------------------------------
# Layer bookkeeping
# ---------------------------------------------------------------------------------------------------


def _weighted_layers(model):
    """Every layer with weights in ``model``, nested models searched (name -> layer)."""
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(_weighted_layers(layer))
        elif layer.weights:
            found[layer.name] = layer
    return found


def _encoder_layers(model, prefix):
    """The encoder's weighted layers keyed by the name without ``prefix + "_"``."""
    start = f"{prefix}_"
    return {
        name[len(start) :]: layer
        for name, layer in _weighted_layers(model).items()
        if name.startswith(start)
    }


def _pair_layers(reference, reference_prefix, model, prefix):
    """``[(model_layer_name, reference_layer, model_layer)]`` for each weighted reference layer."""
    model_layers = _weighted_layers(model)
    pairs = []
    for suffix, ref_layer in _encoder_layers(reference, reference_prefix).items():
        name = f"{prefix}_{suffix}"
        if name not in model_layers:
            raise ValueError(
                f"model {model.name!r} has no layer {name!r} of the encoder: was it built with "
                f"this encoder, layer prefix {prefix!r} and the same encoder kwargs?"
            )
        pairs.append((name, ref_layer, model_layers[name]))
    return pairs


def _copy_weights(pairs, *, into_model):
    """Copy weights between paired layers (reference -> model, or model -> reference)."""
    tensors = 0
    for name, ref_layer, model_layer in pairs:
        src, dst = (ref_layer, model_layer) if into_model else (model_layer, ref_layer)
        values = src.get_weights()
        _check_shapes(dst, values, name, source=f"layer {src.name!r}")
        dst.set_weights(values)
        tensors += len(values)
    return tensors, len(pairs)


def _check_shapes(layer, values, name, *, source):
    expected = [tuple(w.shape) for w in layer.weights]
    got = [tuple(np.shape(v)) for v in values]
    if expected != got:
        raise ValueError(
            f"layer {name!r}: weight shapes {got} from {source} do not match the encoder's "
            f"{expected} (different encoder or encoder kwargs?)"
        )


# ---------------------------------------------------------------------------------------------------
# Keras 3 .weights.h5
# ---------------------------------------------------------------------------------------------------


def _load_keras_weights(reference, encoder_name, path, encoder_kwargs):
    n_expected = sum(1 for layer in reference.layers if layer.weights)
    with h5py.File(path, "r") as f:
        if "layers" not in f:
            raise ValueError(f"{path} is not a Keras 3 .weights.h5 file (no 'layers' group)")
        n_file = sum(
            1
            for group in f["layers"].values()
            if isinstance(group, h5py.Group) and len(group.get("vars", ())) > 0
        )
    description = f"encoder {encoder_name!r} with kwargs {encoder_kwargs or {}}"
    if n_file != n_expected:
        raise ValueError(
            f"{path} holds weights for {n_file} layers but {description} has {n_expected}: "
            "it was written for another encoder or other encoder kwargs"
        )
    try:
        with warnings.catch_warnings():
            # Keras warns about every layer it skips before raising; the error below says it all.
            warnings.filterwarnings("ignore", message="Skipping nested container")
            reference.load_weights(path)
    except ValueError as e:
        names = re.findall(r"name=([\w./-]+)", str(e))
        layer = f"layer {names[0]!r}" if names else "a layer"
        raise ValueError(
            f"{path} does not fit {description}: {layer} could not be loaded "
            f"({str(e).splitlines()[0][:200]})"
        ) from None


# ---------------------------------------------------------------------------------------------------
# Legacy keras-applications .h5
# ---------------------------------------------------------------------------------------------------


def _h5_string_list(group, name):
    """A list-of-strings attribute, possibly split in chunks (``name0``, ``name1``, ...)."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, i = [], 0
        while f"{name}{i}" in group.attrs:
            values.extend(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_legacy_h5(path):
    """``{layer_name: [arrays]}`` (file order, layers with weights only) of a legacy Keras h5 file.

    Reads both ``model.save_weights("x.h5")`` files and full-model ``.h5`` files (``model_weights``).
    """
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file: {e}") from None
    with f:
        group = f.get("model_weights", f)
        layer_names = _h5_string_list(group, "layer_names")
        if not layer_names:
            raise ValueError(
                f"{path} is not a legacy Keras weights file (no 'layer_names' attribute); "
                "Keras 3 weights files must end with .weights.h5"
            )
        weights = {}
        for name in layer_names:
            layer_group = group[name]
            weight_names = _h5_string_list(layer_group, "weight_names")
            if weight_names:
                weights[name] = [np.asarray(layer_group[w]) for w in weight_names]
    return weights


def _load_legacy_weights(reference, encoder_name, path):
    """Set the reference encoder's layers from a keras-applications file; returns skipped names."""
    file_weights = read_legacy_h5(path)
    layers = _encoder_layers(reference, encoder_name)
    if any(name in file_weights for name in layers):
        pairs = []
        for name, layer in layers.items():
            if name not in file_weights:
                raise ValueError(
                    f"{path} has no weights for layer {name!r} of encoder {encoder_name!r}: "
                    f"expected a keras-applications file such as {legacy_file_name(encoder_name)}"
                )
            pairs.append((name, layer, file_weights[name]))
        skipped = [name for name in file_weights if name not in layers]
    else:
        # No name in common (files written by older Keras versions): fall back to layer order,
        # as Keras' own legacy loader does, with shapes checked layer by layer.
        file_items = list(file_weights.items())
        pairs = [
            (name, layer, values) for (name, layer), (_, values) in zip(layers.items(), file_items)
        ]
        for name, layer, values in pairs:
            _check_shapes(layer, values, name, source=f"{path} (matched by order)")
        if len(file_items) < len(layers):
            missing = list(layers)[len(file_items)]
            raise ValueError(
                f"{path} holds {len(file_items)} layers with weights, encoder {encoder_name!r} "
                f"needs {len(layers)}: nothing for layer {missing!r} and after"
            )
        skipped = [name for name, _ in file_items[len(layers) :]]
    for name, layer, values in pairs:
        _check_shapes(layer, values, name, source=path)
        layer.set_weights(values)
    return skipped


def _adapt_first_conv(reference, encoder_name):
    """Rewrite the first convolution so it takes ImageNet mean/std-normalised RGB input."""
    mode, conv_name, bn_name = LEGACY_ENCODERS[encoder_name]
    layers = _encoder_layers(reference, encoder_name)
    conv = layers[conv_name]
    mean = np.asarray(IMAGENET_MEAN, "float64")
    std = np.asarray(IMAGENET_STD, "float64")
    values = [np.asarray(v, "float64") for v in conv.get_weights()]
    kernel = values[0]
    if mode == "caffe":
        # source input (RGB view) = 255 * std * x + (255 * mean - caffe_mean); channels are BGR.
        kernel = kernel[:, :, ::-1, :]
        scale = 255.0 * std
        offset = 255.0 * mean - np.asarray(_CAFFE_MEAN_BGR[::-1])
    else:
        # "tf": source input = x_255 / 127.5 - 1 = 2 * std * x + (2 * mean - 1).
        scale = 2.0 * std
        offset = 2.0 * mean - 1.0
    shift = np.einsum("hwio,i->o", kernel, offset)  # the constant part of the conv output
    values[0] = kernel * scale[None, None, :, None]
    if conv.use_bias:
        values[1] = values[1] + shift
    else:  # fold it into the following BatchNorm: BN(z + shift) with mean m == BN(z) with m - shift
        bn = layers[bn_name]
        gamma, beta, moving_mean, moving_var = bn.get_weights()
        bn.set_weights([gamma, beta, (moving_mean - shift).astype("float32"), moving_var])
    conv.set_weights([v.astype("float32") for v in values])


# ---------------------------------------------------------------------------------------------------
# "imagenet": fetch into the Keras cache
# ---------------------------------------------------------------------------------------------------


def _fetch_imagenet_file(encoder_name, encoder_kwargs):
    file_name = legacy_file_name(encoder_name, **encoder_kwargs)
    folder = {"vgg16": "vgg16", "mobilenet": "mobilenet"}.get(encoder_name, "resnet")
    url = f"{_KERAS_APPS_URL}/{folder}/{file_name}"
    try:
        with _socket_timeout(_DOWNLOAD_SOCKET_TIMEOUT_S):
            return keras.utils.get_file(
                file_name, url, cache_subdir="models", file_hash=_NOTOP_MD5.get(encoder_name)
            )
    except Exception as e:  # noqa: BLE001  (get_file raises a bare Exception on URL failures)
        raise RuntimeError(
            f"could not fetch the ImageNet weights of {encoder_name!r} ({file_name}): {e}. "
            f"Download {url} on a machine with internet access and pass "
            f"--encoder_weights=/path/to/{file_name} (or put it in ~/.keras/models/)"
        ) from None


@contextlib.contextmanager
def _socket_timeout(seconds):
    """Bound each network operation of the download (only where no default timeout is set)."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
