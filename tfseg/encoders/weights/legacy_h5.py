"""Legacy keras-applications ``.h5`` files (vgg16, resnet50, resnet101, mobilenet, mobilenetv2).

The files are read with h5py and matched to the encoder by keras-applications layer name (or by
layer order for files without a name in common). The source's input preprocessing ("caffe": BGR,
0-255, minus a mean; "tf": RGB in [-1, 1]) is folded into the first convolution by
:func:`adapt_first_conv`, so that the encoder takes tfseg's ImageNet mean/std-normalised input.
"""

import h5py
import numpy as np

from tfseg.encoders.weights.by_name import WeightCopyError, copy_weights_by_name
from tfseg.encoders.weights.common import IMAGENET_MEAN, IMAGENET_STD, encoder_layers, shape_error

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# encoder -> (preprocessing mode of its keras-applications weights, first-conv layer, its BN or
# None)
LEGACY_ENCODERS = {
    "vgg16": ("caffe", "block1_conv1", None),
    "resnet50": ("caffe", "conv1_conv", None),
    "resnet101": ("caffe", "conv1_conv", None),
    "mobilenet": ("tf", "conv1", "conv1_bn"),
    "mobilenetv2": ("tf", "Conv1", "bn_Conv1"),
}
_MOBILENET_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
MOBILENETV2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENETV2_ROWS = (96, 128, 160, 192, 224)


def legacy_file_name(encoder_name, *, include_top=False, alpha=1.0, rows=224, **_):
    """File name of the keras-applications ImageNet weights for ``encoder_name``.

    ``rows``: the training resolution of the mobilenetv2 file (96, 128, 160, 192 or 224; the
    weights fit any input size).

    >>> legacy_file_name("mobilenetv2", alpha=0.35)
    'mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5'
    """
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
    if encoder_name == "mobilenetv2":
        if float(alpha) not in MOBILENETV2_ALPHAS or rows not in MOBILENETV2_ROWS:
            raise ValueError(
                f"keras-applications has ImageNet weights for mobilenetv2 alpha in "
                f"{list(MOBILENETV2_ALPHAS)} and rows in {list(MOBILENETV2_ROWS)}, not alpha "
                f"{alpha}, rows {rows}"
            )
        return (
            f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}"
            f"{'' if include_top else '_no_top'}.h5"
        )
    return f"{encoder_name}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"


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

    Reads both ``model.save_weights("x.h5")`` files and full-model ``.h5`` files
    (``model_weights``).
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


def load_legacy_weights(reference, encoder_name, path):
    """Set the reference encoder's layers from a keras-applications file; returns skipped names."""
    file_weights = read_legacy_h5(path)
    layers = encoder_layers(reference, encoder_name)
    if any(name in file_weights for name in layers):
        return _load_by_name(layers, file_weights, encoder_name, path)
    return _load_by_order(layers, file_weights, encoder_name, path)


def _load_by_name(layers, file_weights, encoder_name, path):
    """Every encoder layer from the file's layer of the same name; the file's others are skipped."""
    try:
        copy_weights_by_name(file_weights, layers)
    except WeightCopyError as e:
        if e.report.missing:
            raise ValueError(
                f"{path} has no weights for layer {e.report.missing[0]!r} of encoder "
                f"{encoder_name!r}: expected a keras-applications file such as "
                f"{legacy_file_name(encoder_name)}"
            ) from None
        raise shape_error(e.report, e.report.mismatched[0], path) from None
    return [name for name in file_weights if name not in layers]


def _load_by_order(layers, file_weights, encoder_name, path):
    """No name in common (files written by older Keras versions): match layers by order.

    As Keras' own legacy loader does, with shapes checked layer by layer.
    """
    file_items = list(file_weights.items())
    by_order = {name: values for name, (_, values) in zip(layers, file_items)}
    try:
        copy_weights_by_name(by_order, layers, layers=list(by_order))
    except WeightCopyError as e:
        name = e.report.mismatched[0]
        raise shape_error(e.report, name, f"{path} (matched by order)") from None
    if len(file_items) < len(layers):
        missing = list(layers)[len(file_items)]
        raise ValueError(
            f"{path} holds {len(file_items)} layers with weights, encoder {encoder_name!r} "
            f"needs {len(layers)}: nothing for layer {missing!r} and after"
        )
    return [name for name, _ in file_items[len(layers) :]]


def adapt_first_conv(reference, encoder_name):
    """Rewrite the first convolution so it takes ImageNet mean/std-normalised RGB input.

    The source input is a per-channel affine map of the tfseg input, ``scale * x + offset``: the
    kernel is scaled per input channel (and flipped to RGB for caffe mode), and the constant part
    goes into the conv bias or, without one, into the following BatchNorm's moving mean.
    """
    mode, conv_name, bn_name = LEGACY_ENCODERS[encoder_name]
    layers = encoder_layers(reference, encoder_name)
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
