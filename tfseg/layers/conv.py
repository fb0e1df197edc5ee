"""Convolution layers beyond Keras' own."""

from keras import layers, ops

from tfseg.layers.blocks import keras_serializable


@keras_serializable
class PerGroupConv2D(layers.Conv2D):
    """A grouped ``Conv2D`` computed as one convolution per group, concatenated.

    Same weights (kernel ``(kh, kw, C_in / groups, C_out)``), configuration, function and MACs as
    ``keras.layers.Conv2D(groups=g)``. Why: on the TensorFlow backend Keras runs every grouped
    convolution through a ``tf.function(jit_compile=True)`` that it creates anew at each call, so
    each eager call recompiles it with XLA (RegSeg at 64x96: ~10 s per eager forward pass under
    load, against well under a second here). Plain convolutions have no such path. Exports as one
    convolution per group (LiteRT ``CONV_2D``, ONNX ``Conv``) plus a concatenation.
    """

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        axis = -1 if self.data_format == "channels_last" else 1
        parts = [
            ops.conv(
                x,
                k,
                strides=list(self.strides),
                padding=self.padding,
                dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            )
            for x, k in zip(
                ops.split(inputs, self.groups, axis=axis),
                ops.split(kernel, self.groups, axis=-1),
            )
        ]
        return ops.concatenate(parts, axis=axis)


@keras_serializable
class SubsampledPointwiseConv2D(layers.Conv2D):
    """A strided 1x1 ``Conv2D`` computed as a subsample (``x[:, ::s, ::s]``) then a stride-1 1x1
    convolution: the same weights, configuration, function and MACs (for a 1x1 kernel "valid" and
    "same" both keep exactly the pixels ``0, s, 2s, ...``).

    Why: TensorFlow 2.21's oneDNN kernels corrupt the heap in the backward pass of a 1x1 stride-2
    convolution with fewer than 16 input channels on maps of 128x128 and more (``malloc``
    assertion failures or segmentation faults in the first training step; measured on AMD Zen 4,
    batch 4; 16 channels or 64x64 maps do not crash, nor does ``TF_ENABLE_ONEDNN_OPTS=0``).
    DFANet's first XceptionA shortcut (8 -> 48 channels at 128x128) hit it.
    ``tests/layers/test_shared_blocks.py`` trains through that shape.
    """

    def __init__(self, filters, kernel_size=1, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        if tuple(self.kernel_size) != (1, 1) or self.dilation_rate != (1, 1):
            raise ValueError(
                f"{self.name}: SubsampledPointwiseConv2D takes a 1x1 undilated kernel, got "
                f"kernel_size={self.kernel_size}, dilation_rate={self.dilation_rate}"
            )

    def convolution_op(self, inputs, kernel):
        sh, sw = self.strides
        if self.data_format == "channels_last":
            inputs = inputs[:, ::sh, ::sw, :]
        else:
            inputs = inputs[:, :, ::sh, ::sw]
        return ops.conv(
            inputs, kernel, strides=1, padding="valid", data_format=self.data_format
        )
