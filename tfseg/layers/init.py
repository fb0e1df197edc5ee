"""Initialisers."""

import math

import keras
import numpy as np

from tfseg.layers.blocks import keras_serializable


@keras_serializable
class BilinearKernel(keras.initializers.Initializer):
    """Transposed-convolution kernel that starts as per-channel bilinear upsampling (as in FCN).

    For a kernel of shape (k, k, C_out, C_in) with C_out == C_in, channel c maps to channel c with
    bilinear weights; other entries are zero. Learned label-space upsamplers train faster from it.
    """

    def __call__(self, shape, dtype=None):
        kh, kw, c_out, c_in = shape
        kernel = np.zeros(shape, dtype="float32")
        filt = np.outer(_bilinear_1d(kh), _bilinear_1d(kw))
        for c in range(min(c_out, c_in)):
            kernel[:, :, c, c] = filt
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


def _bilinear_1d(size):
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1.0 - np.abs(np.arange(size) - center) / factor


def torch_init():
    """PyTorch's default convolution / transposed-convolution kernel initialisation.

    ``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(fan_in), +1/sqrt(fan_in)). Keras computes a
    transposed kernel's fan-in from its output channels, as PyTorch does. Zoo networks ported from
    PyTorch use it where He-normal kernels make an untrained network's logits too large for
    float32 export parity (see ``aglnet``, ``cfpnet``, ``esnet``).
    """
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def torch_depthwise_init(kernel_size):
    """PyTorch's default initialisation of a depthwise kernel of ``kernel_size`` (an int or
    ``(kh, kw)``): U(+-1/sqrt(kh * kw)), the fan-in of one channel. (Keras' fan-in of a depthwise
    kernel also counts the channels, so ``torch_init`` would be too small there.)"""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    bound = 1.0 / math.sqrt(kh * kw)
    return keras.initializers.RandomUniform(-bound, bound)
