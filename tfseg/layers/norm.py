"""Normalisation layers that export where Keras' own do not."""

from keras import layers, ops

from tfseg.layers.blocks import keras_serializable


@keras_serializable
class ExportableGroupNormalization(layers.GroupNormalization):
    """``keras.layers.GroupNormalization`` (same weights, configuration and function) that divides
    by ``sqrt(var + eps)`` instead of multiplying by ``rsqrt``: tf2onnx writes ``rsqrt`` as
    ``Reciprocal``, which TensorRT 8.2's ONNX parser rejects; ``Sqrt`` + ``Div`` pass."""

    def _apply_normalization(self, reshaped_inputs, input_shape):
        dtype = reshaped_inputs.dtype
        x = ops.cast(reshaped_inputs, "float32")  # as Keras: GN overflows in float16
        axes = list(range(1, len(x.shape)))
        axes.pop(-2 if self.axis == -1 else self.axis - 1)  # keep the group axis
        mean, variance = ops.moments(x, axes=axes, keepdims=True)
        x = (x - mean) / ops.sqrt(variance + self.epsilon)
        broadcast_shape = self._create_broadcast_shape(input_shape)
        if self.scale:
            x = x * ops.cast(ops.reshape(self.gamma, broadcast_shape), x.dtype)
        if self.center:
            x = x + ops.cast(ops.reshape(self.beta, broadcast_shape), x.dtype)
        return ops.cast(x, dtype)
