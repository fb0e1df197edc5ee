"""LinkNet (Chaurasia and Culurciello, 2017): an encoder whose features are linked into the decoder.

Paper: A. Chaurasia, E. Culurciello, "LinkNet: Exploiting Encoder Representations for Efficient
Semantic Segmentation", VCIP 2017 (arXiv:1707.03718). An ImageNet ResNet18 encoder and a light
decoder: the input of each encoder stage is added to the output of the decoder block of the same
resolution, so the decoder recovers the spatial detail lost by downsampling without learning it
again. Layout as in the PyTorch reference zoo (zh320, ``models/linknet.py``), whose parameter count
tfseg matches. With ``c2..c5`` the channels of the encoder's P2..P5 (64, 128, 256, 512 for
ResNet18; read from the tensors, so any registered encoder fits):

- decoder block ``m -> n`` (the paper's): a 1x1 convolution to ``m / 4`` (+ BN + ReLU), a 3x3/2
  transposed convolution with a bias (+ BN + ReLU) doubling the resolution, a 1x1 convolution to
  ``n`` (+ BN + ReLU);
- ``d4 = block(P5)`` (c5 -> c4, to stride 16), ``d3 = block(d4 + P4)`` (c4 -> c3, stride 8),
  ``d2 = block(d3 + P3)`` (c3 -> c2, stride 4), ``d1 = block(d2 + P2)`` (c2 -> c2), whose middle
  layer is a 3x3 convolution (+ BN + ReLU) that keeps stride 4: torchvision's ResNet18, as the
  reference uses it, does not downsample in its first stage (the paper's encoder block 1 does, so
  its decoder block 1 upsamples);
- head: a 3x3/2 transposed convolution to ``c2 / 2`` (+ BN + ReLU), a 3x3 convolution (+ BN + ReLU)
  and a 3x3/2 transposed convolution to the classes (+ BN): logits at the input resolution (the
  paper's last full convolution is 2x2; the reference's, kept here, 3x3).

Departures from the reference (no parameters or MACs change):

- the last transposed convolution keeps its BN but not its ReLU, so the logits are linear (the
  reference clamps every negative logit to zero);
- transposed convolutions pad "same" (Keras'), which places the kernel one pixel differently from
  PyTorch's ``padding=1, output_padding=1``; BN epsilon 1e-3 (PyTorch 1e-5).

Parameters with 19 classes: 11,538,969 (reference 11,538,969: the ResNet18 encoder's 11,176,512
and 362,457 in the decoder); 22.15 conv GMACs at 512x1024 (reference 22.15).

>>> model = tfseg.build_model("linknet", 19, input_shape=(512, 1024, 3))
>>> model = tfseg.build_model("linknet", 19, encoder="mobilenet")  # any registered encoder
"""

from keras import layers

from tfseg.encoders import encoder_pyramid
from tfseg.layers import conv_bn_act, deconv_bn_act
from tfseg.registry import MODELS


def decoder_block(x, filters, *, upsample=True, name):
    """LinkNet decoder block: 1x1 to a quarter of the channels, a 3x3/2 transposed convolution
    (or, with ``upsample=False``, a 3x3 convolution), 1x1 to ``filters``; each + BN + ReLU."""
    hidden = x.shape[-1] // 4
    x = conv_bn_act(x, hidden, 1, name=f"{name}_reduce")
    if upsample:
        x = deconv_bn_act(x, hidden, name=f"{name}_up")
    else:
        x = conv_bn_act(x, hidden, 3, name=f"{name}_conv")
    return conv_bn_act(x, filters, 1, name=f"{name}_expand")


@MODELS.register(
    "linknet",
    stride=32,
    paper="LinkNet (Chaurasia et al., 2017)",
    reference="LinkNet",
    default_encoder="resnet18",
    any_encoder=True,
    features={8: "linknet_decoder3_expand_relu"},
)
def linknet(inputs, num_classes, *, encoder, encoder_kwargs=None, name="linknet"):
    """LinkNet logits at the input resolution.

    Args:
      inputs: (B, H, W, 3) image tensor; H and W multiples of 32.
      num_classes: logit channels.
      encoder: the registered encoder (``resnet18``, the paper's, by default through
        ``build_model``); its P2..P5 feed the decoder.
      encoder_kwargs: keyword arguments for the encoder builder.
      name: layer-name prefix of the decoder (the encoder's layers carry the encoder's name).
    """
    pyramid = encoder_pyramid(inputs, encoder, output_stride=32, encoder_kwargs=encoder_kwargs)
    p2, p3, p4, p5 = (pyramid[k] for k in ("P2", "P3", "P4", "P5"))
    x = decoder_block(p5, p4.shape[-1], name=f"{name}_decoder4")
    x = layers.Add(name=f"{name}_link4")([x, p4])
    x = decoder_block(x, p3.shape[-1], name=f"{name}_decoder3")
    x = layers.Add(name=f"{name}_link3")([x, p3])
    x = decoder_block(x, p2.shape[-1], name=f"{name}_decoder2")
    x = layers.Add(name=f"{name}_link2")([x, p2])
    x = decoder_block(x, p2.shape[-1], upsample=False, name=f"{name}_decoder1")
    hidden = p2.shape[-1] // 2
    x = deconv_bn_act(x, hidden, name=f"{name}_head_up1")
    x = conv_bn_act(x, hidden, 3, name=f"{name}_head_conv")
    return deconv_bn_act(x, num_classes, activation=None, name=f"{name}_head_up2")
