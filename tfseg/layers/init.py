"""Initialisers."""

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
