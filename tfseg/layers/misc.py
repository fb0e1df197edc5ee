"""Small custom layers: channel shuffle and the input-stride guard."""

import numpy as np
import keras
from keras import ops

from tfseg.layers.blocks import keras_serializable


@keras_serializable
class ChannelShuffle(keras.layers.Layer):
    """ShuffleNet channel shuffle as a fixed channel permutation (a gather on the channel axis).

    Equivalent to reshape (g, C/g) -> transpose -> reshape, but independent of H/W, so it works with
    dynamic shapes and exports to a single TFLite GATHER / ONNX Gather.
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(
                f"{self.name}: {channels} channels are not divisible by groups={self.groups}"
            )
        perm = np.arange(channels).reshape(self.groups, channels // self.groups).T.reshape(-1)
        self._perm = perm.astype("int32")

    def call(self, x):
        return ops.take(x, self._perm, axis=-1)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras_serializable
class StrideGuard(keras.layers.Layer):
    """Identity layer that records the model's required input stride.

    Placed right after the input: a model built for a static size that is not a multiple of
    ``stride`` fails at build time with a message naming the size. Tools read ``stride`` from it
    (see ``tfseg.models.model_stride``) to pad inputs and crop outputs back.
    """

    def __init__(self, stride, **kwargs):
        super().__init__(**kwargs)
        self.stride = int(stride)

    def build(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        for dim, label in ((h, "height"), (w, "width")):
            if dim is not None and dim % self.stride:
                raise ValueError(
                    f"input {label} {dim} is not a multiple of the model's stride {self.stride}; "
                    f"use a size divisible by {self.stride} (tfseg.evaluate/predict pad automatically)"
                )

    def call(self, x):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stride": self.stride}
