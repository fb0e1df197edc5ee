"""Pieces shared by the decoders."""

from keras import layers

from tfseg.layers.blocks import bn_act
from tfseg.layers.init import BilinearKernel


def label_upsample(x, num_classes, factor, *, name):
    """Learned x``factor`` upsampling in label space: transposed conv (kernel 2*factor), bilinear
    init."""
    return layers.Conv2DTranspose(
        num_classes,
        2 * factor,
        strides=factor,
        padding="same",
        kernel_initializer=BilinearKernel(),
        name=name,
    )(x)


def feature_upsample(x, filters, *, name):
    """x2 transposed convolution (kernel 4) in feature space + BN + ReLU."""
    x = layers.Conv2DTranspose(
        filters, 4, strides=2, padding="same", use_bias=False, name=f"{name}_deconv"
    )(x)
    return bn_act(x, "relu", name=name)
