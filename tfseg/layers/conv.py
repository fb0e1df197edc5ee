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
