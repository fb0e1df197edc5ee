"""SMP's ``Conv2dReLU`` block, shared by the SMP-layout PSPNet and MAnet decoders."""

from keras import layers

from tfseg.layers.blocks import conv_bn_act


def conv2d_relu(x, filters, kernel_size, *, use_batchnorm=True, name):
    """segmentation_models_pytorch's ``Conv2dReLU``: convolution + BatchNorm + ReLU with
    ``use_batchnorm`` (the convolution then has no bias: ``conv_bn_act``), else convolution with a
    bias + ReLU. Layers ``{name}_conv``, ``{name}_bn`` (with BN), ``{name}_relu``. Keras "same"
    padding (SMP pads ``kernel_size // 2``: the same for the odd kernels used here)."""
    if use_batchnorm:
        return conv_bn_act(x, filters, kernel_size, name=name)
    x = layers.Conv2D(
        filters, kernel_size, padding="same", kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)
