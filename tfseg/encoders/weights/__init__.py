"""Encoder weights: load them into any model that holds an encoder, and extract them from one.

Sources ``load_encoder_weights`` accepts (the path's ending picks the loader):

- ``*.weights.h5``: a Keras 3 weights file of the standalone encoder (``build_encoder_model``), as
  written by ``export_encoder_weights`` / ``tools/export_encoder_weights.py``. Any encoder.
- ``*.h5``: a legacy keras-applications file (``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``,
  ``resnet50_..._notop.h5``, ``resnet101_..._notop.h5``, ``mobilenet_1_0_224_tf_no_top.h5``,
  ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5``; the include-top variants
  too, their classifier layers are skipped, as is mobilenetv2's ``Conv_1`` when the encoder is
  built without ``include_last_conv``) for vgg16, resnet50, resnet101, mobilenet and mobilenetv2,
  read with h5py and matched by keras-applications layer name.
- ``*.safetensors`` (read with numpy) and ``*.pth`` / ``*.pt`` / ``*.bin`` (PyTorch pickles, need
  ``torch``): torchvision / timm state dicts for resnet18, resnet50 / resnet101 and mobilenetv2
  (built with ``layout="torchvision"``) and vgg16, converted tensor by tensor (``torch_state``);
  they take tfseg's input as it is (torchvision normalises with the same ImageNet mean/std).
- ``"imagenet"``: the same legacy file fetched into the Keras cache (``~/.keras/models``) with
  ``keras.utils.get_file``; needs the network unless the file is already cached.

Input normalisation. tfseg feeds encoders images normalised with the ImageNet mean/std
(:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`, RGB in [0, 1]). The keras-applications weights expect
other inputs: "caffe" mode (VGG16, ResNet50/101: BGR, 0-255, minus a per-channel mean) and "tf" mode
(MobileNet v1/v2: RGB scaled to [-1, 1]). Both are per-channel affine maps of the tfseg input, so
with ``adapt_input=True`` (the default) the first convolution is rewritten to take the tfseg input
(kernel scaled per input channel, and for caffe mode flipped to RGB; the offset folded into the conv
bias or, for MobileNet, into ``conv1_bn``'s / ``bn_Conv1``'s moving mean). The result is exact away
from the image border; on the border pixels the zero padding stands for the mean colour instead of
the source's zero, a difference of a fraction of a grey level for caffe mode and of the padding
colour for MobileNet. ``.weights.h5`` files hold tfseg-trained weights and are never adapted.

Modules: ``keras_h5`` (Keras 3 ``.weights.h5``: load, export), ``legacy_h5`` (keras-applications
``.h5``: read, match, adapt the first convolution), ``torch_state`` (PyTorch ``.pth`` /
``.safetensors`` state dicts: read, rename, convert layouts), ``imagenet`` (fetch into the Keras
cache), ``common`` (report, layer pairing) and ``by_name`` (``copy_weights_by_name``, the weight
copy by layer name that ``--init_model`` and ``tools/transfer_head.py`` use too).
"""

import os

from tfseg.encoders.core import build_encoder_model
from tfseg.encoders.weights.by_name import (
    CopyReport,
    WeightCopyError,
    copy_weights_by_name,
    weighted_layers,
)
from tfseg.encoders.weights.common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadReport,
    copy_pairs,
    pair_layers,
)
from tfseg.encoders.weights.imagenet import fetch_imagenet_file
from tfseg.encoders.weights.keras_h5 import export_encoder_weights, load_keras_weights
from tfseg.encoders.weights.legacy_h5 import (
    LEGACY_ENCODERS,
    adapt_first_conv,
    legacy_file_name,
    load_legacy_weights,
    read_legacy_h5,
)
from tfseg.encoders.weights.torch_state import (
    TORCH_ENCODERS,
    check_torch_encoder,
    is_torch_path,
    load_torch_weights,
    match_torch_epsilon,
    read_safetensors,
    read_state_dict,
)
from tfseg.registry import ENCODERS

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LEGACY_ENCODERS",
    "TORCH_ENCODERS",
    "CopyReport",
    "LoadReport",
    "WeightCopyError",
    "copy_weights_by_name",
    "export_encoder_weights",
    "legacy_file_name",
    "load_encoder_weights",
    "read_legacy_h5",
    "read_safetensors",
    "read_state_dict",
    "weighted_layers",
]


def load_encoder_weights(
    model, encoder_name, path, *, prefix=None, adapt_input=True, **encoder_kwargs
):
    """Load encoder weights into every layer of ``model`` that belongs to the encoder.

    Args:
      model: a full tfseg model, a standalone encoder (``build_encoder_model``), or any model that
        holds the encoder's layers (nested models are searched too); a model that holds only the
        encoder's first stages (a decoder registered with ``encoder_depth``, SMP's PSPNet) gets
        those, the others are listed in ``.skipped``.
      encoder_name: registered encoder name (``tfseg.list_encoders()``).
      path: ``*.weights.h5`` (Keras 3, standalone encoder), ``*.h5`` (legacy keras-applications
        file, vgg16/resnet50/resnet101/mobilenet/mobilenetv2), ``*.safetensors`` / ``*.pth`` /
        ``*.pt`` / ``*.bin`` (torchvision state dict: resnet18, vgg16, and resnet50/resnet101/
        mobilenetv2 with ``layout="torchvision"``) or ``"imagenet"`` (download into the Keras
        cache).
      prefix: layer-name prefix of the encoder inside ``model`` (default ``encoder_name``, which is
        what ``build_model`` uses).
      adapt_input: for keras-applications weights, rewrite the first convolution so that it takes
        ImageNet mean/std-normalised RGB input as tfseg feeds it (see the module docstring).
      **encoder_kwargs: the encoder's hyper-parameters (``alpha=0.5``, ``groups=3``, ...), as the
        model was built with; ``output_stride`` may be passed and does not change the weights.

    Returns:
      A :class:`LoadReport`: the number of tensors loaded (an int) with ``.layers``, ``.skipped``
      (for PyTorch files: the checkpoint's unused tensor names), ``.missing`` (PyTorch files: the
      needed tensors the file lacks) and ``.notes``.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file does not fit the encoder (the message names the layer), the extension is
        unknown, or a legacy file is given for an encoder without keras-applications weights, or a
        PyTorch file for an encoder (or layout) that has no torchvision counterpart.
      ImportError: a ``.pth`` / ``.pt`` / ``.bin`` file and PyTorch is not installed.
      RuntimeError: ``"imagenet"`` and the download failed (the message names the file to fetch).
    """
    ENCODERS.get(encoder_name)  # unknown names fail with the choices
    prefix = prefix or encoder_name
    path, kind = _resolve_source(encoder_name, os.fspath(path), encoder_kwargs)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    reference = build_encoder_model(encoder_name, **encoder_kwargs)
    skipped, missing, notes = (), (), ()
    if kind == "keras":
        load_keras_weights(reference, encoder_name, path, encoder_kwargs)
    elif kind == "torch":
        loaded = load_torch_weights(reference, encoder_name, path, encoder_kwargs)
        skipped, missing = loaded.unused, loaded.missing
    else:
        skipped = load_legacy_weights(reference, encoder_name, path)
        if adapt_input:
            adapt_first_conv(reference, encoder_name)
    # A model may hold only the encoder's first stages (decoders with ``encoder_depth``).
    pairs, absent = pair_layers(reference, encoder_name, model, prefix, truncated_ok=True)
    if kind == "torch":  # layers the checkpoint lacks keep the model's weights
        pairs = {
            name: pair
            for name, pair in pairs.items()
            if name[len(prefix) + 1 :] not in loaded.not_loaded
        }
    tensors, layers_loaded = copy_pairs(pairs, into_model=True)
    if kind == "torch":
        notes = match_torch_epsilon([layer for _, layer in pairs.values()])
    return LoadReport(
        tensors, layers_loaded, tuple(skipped) + absent, path, missing=missing, notes=notes
    )


def _resolve_source(encoder_name, path, encoder_kwargs):
    """``(file path, "keras" | "legacy" | "torch")`` from the path's ending (``"imagenet"``:
    fetched)."""
    if path == "imagenet":
        return fetch_imagenet_file(encoder_name, encoder_kwargs), "legacy"
    if is_torch_path(path):
        check_torch_encoder(encoder_name, encoder_kwargs, path)
        return path, "torch"
    if path.endswith(".weights.h5"):
        return path, "keras"
    if path.endswith(".h5"):
        if encoder_name not in LEGACY_ENCODERS:
            raise ValueError(
                f"{path}: legacy .h5 weights are only supported for "
                f"{', '.join(sorted(LEGACY_ENCODERS))} (keras-applications files); for encoder "
                f"{encoder_name!r} only Keras 3 .weights.h5 files (e.g. written by "
                "tools/export_encoder_weights.py) are supported"
            )
        return path, "legacy"
    raise ValueError(
        f"{path}: unknown weights format; expected a path ending in .weights.h5 (Keras 3), "
        ".h5 (legacy keras-applications), .safetensors / .pth / .pt / .bin (PyTorch state dict) "
        "or the word 'imagenet'"
    )
