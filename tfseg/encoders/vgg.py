"""VGG16 encoder (Simonyan & Zisserman 2015), layer for layer as ``keras.applications.VGG16``.

Convolutions carry a bias and no normalisation, as in the original, so the keras-applications
ImageNet weights load (``tfseg.encoders.weights``). Layer names are the keras-applications names
behind the prefix: ``f"{name}_block3_conv2"``.
"""

from keras import layers

from tfseg.encoders.core import StrideSchedule
from tfseg.registry import ENCODERS

# (convolutions, filters) per block; each block ends with a 2x2 max-pool.
_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


@ENCODERS.register("vgg16")
def vgg16(inputs, *, output_stride=32, name="vgg16"):
    """VGG16 encoder. Returns ``{"P1": .., "P5": ..}``; P_k is the output of block k (after its
    pool).

    With ``output_stride=8`` the pools of blocks 4 and 5 are removed (P4/P5 are then the block's
    last convolution, stride 8) and block 5 uses dilation 2; there is no layer after the last pool,
    so dilation 4 has nothing to apply to (the Dilation frontend's fc6 belongs to the decoder).
    """
    schedule = StrideSchedule(output_stride)
    x = inputs
    pyramid = {}
    for b, (convs, filters) in enumerate(_BLOCKS, start=1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(
                filters,
                3,
                activation="relu",
                padding="same",
                dilation_rate=schedule.dilation,
                name=f"{name}_block{b}_conv{c}",
            )(x)
        if schedule.downsamples:
            x = layers.MaxPooling2D(2, strides=2, name=f"{name}_block{b}_pool")(x)
        schedule.down()
        pyramid[f"P{b}"] = x
    return pyramid
