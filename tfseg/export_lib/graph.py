"""Keras-level graph rewrites done before any conversion, and op-name -> layer-name mapping.

``inference_model(model)`` returns a copy of a functional tfseg model in which every
BatchNormalization that directly follows a convolution (Conv2D, DepthwiseConv2D, SeparableConv2D,
Conv2DTranspose) is folded into that convolution's kernel and bias (the BN layer becomes an
identity layer of the same name). Why here and not in the converters (measured with TF 2.21,
tf2onnx 1.17, Keras 3.15):

- the TFLite converter folds BN into CONV_2D / DEPTHWISE_CONV_2D itself when the variables are
  frozen (no MUL/ADD left);
- tf2onnx folds BN into ``Conv`` for plain convolutions but leaves a ``Mul`` (+ ``Add``) after
  depthwise convolutions and transposed convolutions (e.g. 13 ``Mul`` in SkipNet-MobileNet, 4 in
  UNet-ResNet18); onnxruntime and TensorRT would fuse them again at load time, but the ONNX file
  itself is then not folded;
- a SavedModel keeps BN as separate ops reading four variables.

Folding once in Keras makes every artifact folded the same way; the export report lists what was
folded and what was left (a BN after an addition or a concatenation cannot be folded and stays as a
per-channel multiply-add).

``grouped_conv="native"`` also replaces grouped ``Conv2D`` layers, subclasses included (ShuffleNet;
RegSeg's ``PerGroupConv2D``), by a variant that emits a plain TF ``Conv2D`` op: Keras wraps
grouped convolutions in an XLA-compiled nested function on TF (TF's CPU kernel lacks groups),
which tf2onnx cannot convert (``StatefulPartitionedCall``).
The plain op converts to ONNX ``Conv`` with ``group``. Such a copy is only for tracing/conversion:
TF itself cannot run it on CPU.
"""

import re

import keras
import numpy as np

from tfseg.layers.conv import SubsampledPointwiseConv2D
from tfseg.layers.misc import ChannelShuffle
from tfseg.layers.pooling import AdaptiveAvgPool2D, SameAveragePooling2D
from tfseg.layers.resize import BilinearUpsample
from tfseg.layers.unpool import MaxUnpool2D, PoolSwitches

_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)


class _NativeGroupedConv2D(keras.layers.Conv2D):
    """Conv2D whose grouped convolution is one plain TF ``Conv2D`` op (for conversion only)."""

    def convolution_op(self, inputs, kernel):
        import tensorflow as tf

        return tf.nn.conv2d(
            inputs,
            kernel,
            strides=[1, *self.strides, 1],
            padding=self.padding.upper(),
            dilations=[1, *self.dilation_rate, 1],
        )


class _MaxFormPReLU(keras.layers.Layer):
    """``PReLU`` computed as ``max(x, alpha * x)``: the same function when every slope is in
    [0, 1] (for x >= 0, x >= alpha x; for x < 0, alpha x >= x), which ``prelu_eligible`` checks.

    For int8 LiteRT only: XNNPACK runs int8 MAXIMUM and MUL but not int8 PRELU, and a PRELU
    leaves its part of the graph to TFLite's reference kernels. Six 3x3 convolutions (64 channels,
    128x256) each followed by a PReLU, int8, 2 threads on an AMD Zen 4 (VNNI), interleaved under
    load: 414 ms with PRELU, 97 ms in this form, 92 ms with ReLU instead (fp32: 354 ms with PRELU,
    406 ms in this form, hence int8 only).
    """

    def __init__(self, alpha_shape, **kwargs):
        super().__init__(**kwargs)
        self.alpha_shape = tuple(alpha_shape)

    def build(self, input_shape):
        self.alpha = self.add_weight(
            shape=self.alpha_shape, initializer="zeros", trainable=False, name="alpha"
        )

    def call(self, x):
        return keras.ops.maximum(x, keras.ops.multiply(x, self.alpha))

    def get_config(self):
        return {**super().get_config(), "alpha_shape": self.alpha_shape}


class _LeakyFormPReLU(keras.layers.Layer):
    """A ``PReLU`` with one slope for the whole layer (PyTorch's ``nn.PReLU()``, most of the zoo)
    as a leaky ReLU with that slope: the same function for any slope, one int8 LEAKY_RELU op,
    which XNNPACK runs (slopes down to about 0.003 in magnitude; below that XNNPACK leaves the op
    to TFLite's own int8 kernel, still correct).

    For int8 LiteRT. The max form (``_MaxFormPReLU``) is two ops, of which XNNPACK refuses the int8
    MAXIMUM: each one splits the delegated graph (87 partitions in ENet, 72 in CFPNet, 44 in
    DABNet at 256x512) and its product is quantised on its own. Six 3x3 convolutions (64
    channels, 128x256), one slope 0.25, int8, 2 threads, AMD Zen 4, idle: 20.1 ms in max form,
    18.5 ms in this form (ReLU: 18.6 ms), mean relative error against float 0.155 -> 0.044.
    """

    def __init__(self, slope, **kwargs):
        super().__init__(**kwargs)
        self.slope = float(slope)

    def call(self, x):
        return keras.ops.leaky_relu(x, negative_slope=self.slope)

    def get_config(self):
        return {**super().get_config(), "slope": self.slope}


class _TransposeChannelShuffle(keras.layers.Layer):
    """``tfseg.layers.ChannelShuffle`` as reshape (g, C/g) -> transpose -> reshape where the
    input's height and width are static at export (the gather otherwise): the same permutation.
    XNNPACK runs int8 TRANSPOSE but not int8 GATHER, and onnxruntime's Gather on the channel axis
    is a slow copy (measured in docs/results.md)."""

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def call(self, x):
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        g = self.groups
        if h is None or w is None:
            perm = np.arange(c).reshape(g, c // g).T.reshape(-1).astype("int32")
            return keras.ops.take(x, perm, axis=-1)
        y = keras.ops.reshape(x, (-1, h, w, g, c // g))
        y = keras.ops.transpose(y, (0, 1, 2, 4, 3))
        return keras.ops.reshape(y, (-1, h, w, c))

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


class _ConvChannelShuffle(keras.layers.Layer):
    """``tfseg.layers.ChannelShuffle`` as a 1x1 convolution whose kernel is the permutation matrix
    (a constant, not a weight): output channel j is input channel ``perm[j]`` times 1, plus zeros,
    so the same values, exactly.

    For OpenVINO and onnxruntime int8 (``rewrites`` in ``pipeline.py``): OpenVINO's
    ShuffleChannels kernel runs in float32 on the full tensor, because NNCF puts the quantizers
    after the shuffle (at the convolutions behind the channel split that follows it), and
    onnxruntime's QDQ graph transposes dequantized floats; a convolution is quantized itself and
    runs as an int8 kernel, in the blocked layout its neighbours use. The multiply-adds (C per
    output value) are few beside the convolutions around it. Under the AVX2 profile, int8, 512x1024:
    OpenVINO LEDNet 195 -> 172 ms, AGLNet 191 -> 139, Lite-HRNet 327 -> 231
    (docs/openvino_downsampler_avx2.json); onnxruntime LEDNet 133 -> 118, AGLNet 160 -> 136
    (docs/ort_int8_shuffles_avx2.json). XNNPACK's int8 TRANSPOSE is faster than the convolution:
    LiteRT keeps the transpose form."""

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def build(self, input_shape):
        c, g = int(input_shape[-1]), self.groups
        perm = np.arange(c).reshape(g, c // g).T.reshape(-1)
        kernel = np.zeros((1, 1, c, c), np.float32)
        kernel[0, 0, perm, np.arange(c)] = 1.0
        self._kernel = kernel

    def call(self, x):
        return keras.ops.conv(x, keras.ops.cast(self._kernel, x.dtype), strides=1, padding="valid")

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


_SELU_SCALE = 1.0507009873554805
_SELU_ALPHA = 1.6732632423543772


class _EluFormSELU(keras.layers.Layer):
    """SELU as ``scale * (elu(x) + (alpha - 1) * min(elu(x), 0))``: the same function, from ops
    LiteRT has kernels for (ELU, MINIMUM, MUL, ADD), where the converter writes SELU as GREATER /
    EXP / SUB / SELECT, which XNNPACK does not run and whose int8 form is far off (six 3x3
    convolutions with SELU, 32 channels at 128x256, int8, 2 threads, AMD Zen 4: 36.5 ms and a mean
    relative error of 0.88 against float; this form 7.8 ms and 0.044). MiniNet at 512x1024: int8
    111.6 -> 36.8 ms, argmax agreement with float 25 % -> 93 %; fp32 83.0 -> 71.9 ms (exact either
    way); docs/results.md."""

    def call(self, x):
        e = keras.ops.elu(x)
        return _SELU_SCALE * (e + (_SELU_ALPHA - 1.0) * keras.ops.minimum(e, 0.0))


# ``_MaskPoolSwitches`` marks a position as "not the maximum" with two clipped gains,
# ``min(255 min(16 (max - v), 1), 1)``: 0 at the maximum and 1 at least 1/4080 below it. In int8 a
# difference of one quantization step becomes at least one step of the first product as long as
# 16 x (its step) >= 1/255, and the second gain turns that step into 1; one multiply by 4080
# would need a ratio of input to output scales that XNNPACK refuses. So the masks are exact in
# int8 when the largest spread (max - min) of a window in the calibration data lies between 1/16
# and 4064 (it sets the scale of ``max - v``); outside that range they are still close (a tie
# within one step goes to the first position) or run outside XNNPACK.
_SWITCH_GAINS = (16.0, 255.0)


class _MaskPoolSwitches(keras.layers.Layer):
    """``PoolSwitches`` for int8 LiteRT: the switches as four 0/1 masks, one per window
    position, concatenated on channels ``(B, H/2, W/2, 4C)`` in depth-to-space order, from ops
    XNNPACK runs in int8: MAX_POOL_2D, RESHAPE / TRANSPOSE / slices for the window positions, SUB,
    MUL with a fused clip (``_SWITCH_GAINS``: 0 at the maximum, 1 one quantization step below it).
    Ties go to the first position, as in ``PoolSwitches``. The float form compares with EQUAL /
    SELECT_V2 / CAST / MAXIMUM, which XNNPACK does not run in int8: ENet's int8 graph fell into six
    partitions around them. In float, values less than 1/4080 below the maximum give fractional
    masks, so the rewrite is for int8 only (``rewrites`` in ``pipeline.py``)."""

    def call(self, x):
        import tensorflow as tf

        m = tf.nn.max_pool2d(x, 2, 2, padding="VALID")
        # the window positions in depth-to-space order (the converter leaves SPACE_TO_DEPTH in
        # float; reshape / transpose stay int8)
        c = x.shape[-1]
        h, w = (tf.shape(x)[i] if x.shape[i] is None else x.shape[i] for i in (1, 2))
        parts = tf.reshape(x, (-1, h // 2, 2, w // 2, 2, c))
        parts = tf.reshape(tf.transpose(parts, (0, 1, 3, 2, 4, 5)), (-1, h // 2, w // 2, 4 * c))
        misses = []  # 1 where the position is below the window's maximum
        for k in range(3):
            miss = m - parts[..., k * c : (k + 1) * c]
            for gain in _SWITCH_GAINS:
                miss = tf.clip_by_value(gain * miss, -1.0, 1.0)
            misses.append(miss)
        # first on ties: position k is the switch where it is a maximum and no earlier one was
        free = [misses[0]]  # free[k]: none of positions 0..k held the maximum
        for miss in misses[1:]:
            free.append(free[-1] * miss)
        masks = [1.0 - free[0], free[0] - free[1], free[1] - free[2], free[2]]
        return tf.concat(masks, axis=-1)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else h // 2, None if w is None else w // 2, 4 * c)


class _MaskMaxUnpool2D(keras.layers.Layer):
    """``MaxUnpool2D`` from ``_MaskPoolSwitches``' masks: the values repeated for the four window
    positions, multiplied by the masks, then depth-to-space(2): CONCATENATION, MUL and
    DEPTH_TO_SPACE, all run by XNNPACK in int8 (the float form interleaves with PACK / RESHAPE
    after EQUAL / CAST / MUL)."""

    def call(self, inputs):
        import tensorflow as tf

        values, masks = inputs
        return tf.nn.depth_to_space(tf.concat([values] * 4, axis=-1) * masks, 2)

    def compute_output_shape(self, input_shapes):
        b, h, w, c = input_shapes[0]
        return (b, None if h is None else h * 2, None if w is None else w * 2, c)


class _DepthToSpaceNearest(keras.layers.Layer):
    """A nearest ``UpSampling2D`` by a power of two as x2 steps of CONCATENATION (the tensor four
    times) and DEPTH_TO_SPACE(2): the same values, from ops XNNPACK runs in int8. The converter
    writes the Keras layer as TILE ops (``Repeat``), which XNNPACK does not run: each one ends a
    delegate partition and runs in the single-threaded built-in kernel (Lite-HRNet: 32 TILEs,
    22 partitions)."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        import tensorflow as tf

        for _ in range(self.factor.bit_length() - 1):
            x = tf.nn.depth_to_space(tf.concat([x] * 4, axis=-1), 2)
        return x

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h * f, None if w is None else w * f, c)


def nearest_upsample_eligible(layer):
    """Whether an ``UpSampling2D`` can become ``_DepthToSpaceNearest`` (nearest, one factor for
    both axes, a power of two >= 2, channels-last)."""
    if type(layer) is not keras.layers.UpSampling2D:
        return False
    fy, fx = layer.size
    return (
        layer.interpolation == "nearest"
        and fy == fx >= 2
        and fy & (fy - 1) == 0
        and layer.data_format == "channels_last"
    )


def _average_by_conv(x, pool_size, strides):
    """A "valid" average pooling as a depthwise convolution with every weight 1 / (kh kw)."""
    import tensorflow as tf

    kh, kw = pool_size
    kernel = np.full((kh, kw, x.shape[-1], 1), 1.0 / (kh * kw), "float32")
    return tf.nn.depthwise_conv2d(x, kernel, (1, *strides, 1), padding="VALID")


class _ConvAveragePooling2D(keras.layers.AveragePooling2D):
    """A "valid" ``AveragePooling2D`` as a depthwise convolution of weights 1 / (kh kw): the same
    function. For int8 LiteRT, where XNNPACK runs DEPTHWISE_CONV_2D but not int8
    AVERAGE_POOL_2D (which left ESPNetV2's, FPENet's and Lite-HRNet's int8 graphs in several
    partitions); the int8 weights are exact (every weight is the per-channel maximum)."""

    def call(self, x):
        return _average_by_conv(x, self.pool_size, self.strides)


class _ConvAdaptiveAvgPool2D(AdaptiveAvgPool2D):
    """``AdaptiveAvgPool2D`` whose windows tile the input exactly (a static size divisible by
    the output size) as a depthwise convolution, like ``_ConvAveragePooling2D``; the other cases
    as before."""

    def call(self, x):
        oh, ow = self.output_size
        h, w = x.shape[1], x.shape[2]
        if (oh, ow) == (1, 1) or h is None or w is None or h % oh or w % ow:
            return super().call(x)
        k = (h // oh, w // ow)
        return _average_by_conv(x, k, k)


class _ExpandedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """A ``DepthwiseConv2D`` with a channel multiplier m > 1 as a 1x1 convolution that repeats
    each input channel m times (0/1 weights: output channel ``c m + j`` is input channel ``c``)
    and a depthwise convolution of multiplier 1 on the repeated channels: the same function, the
    same weights (the kernel reshaped from ``(kh, kw, C, m)`` to ``(kh, kw, C m, 1)``). XNNPACK
    runs a multiplier above 1 as a grouped convolution of m outputs per group, several times
    slower than its depthwise kernel plus a dense 1x1 convolution (a 12 -> 48 channel 3x3 at
    128x256, int8: 1.45 against 0.38 ms; docs/results.md). The 0/1 weights are exact in int8.
    DFANet's XceptionA blocks and BiSeNetV2's gather-and-expand layers use such convolutions."""

    def call(self, x):
        import tensorflow as tf

        c, m = x.shape[-1], self.depth_multiplier
        expand = np.zeros((1, 1, c, c * m), "float32")
        expand[0, 0, np.repeat(np.arange(c), m), np.arange(c * m)] = 1.0
        y = tf.nn.conv2d(x, expand, 1, "VALID")
        kernel = tf.reshape(self.kernel, (*self.kernel_size, c * m, 1))
        y = tf.nn.depthwise_conv2d(
            y, kernel, (1, *self.strides, 1), self.padding.upper(), dilations=self.dilation_rate
        )
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        return self.activation(y) if self.activation is not None else y


def expand_depthwise_eligible(layer):
    """Whether a layer is a channels-last ``DepthwiseConv2D`` with a multiplier above 1
    (``_ExpandedDepthwiseConv2D``)."""
    return (
        type(layer) is keras.layers.DepthwiseConv2D
        and layer.depth_multiplier > 1
        and layer.data_format == "channels_last"
    )


def same_window_counts(n, k, s):
    """Pixels inside ``[0, n)`` of each window of a "same" pooling along one axis (size ``n``,
    window ``k``, stride ``s``), with TensorFlow's split of the padding (the extra pixel at the
    end): the divisors of a "same" average pooling."""
    out = -(-n // s)
    before = max((out - 1) * s + k - n, 0) // 2
    starts = np.arange(out) * s - before
    return np.minimum(starts + k, n) - np.maximum(starts, 0)


class _ConvSameAveragePooling2D(SameAveragePooling2D):
    """A "same" average pooling (``SameAveragePooling2D``, or a channels-last Keras
    ``AveragePooling2D(padding="same")``) as depthwise convolutions of constant weights followed
    by one multiply: the window sums / (kh kw) with zero padding, times ``kh kw / count``, the
    (constant) number of real pixels of each window. The same function, from ops XNNPACK runs in
    int8: it has no int8 AVERAGE_POOL_2D, whose built-in kernel took ADSCNet's 13x13 pool 16 ms.
    Windows of more than 9 pixels are two one-dimensional passes (kh x 1, then 1 x kw): at 13x13
    a single depthwise convolution was slower than the pool (docs/results.md). Every int8 weight
    is exact (each equals its channel's maximum); the correction map is one int8 constant.
    Without a static input size the layer stays a pooling."""

    def call(self, x):
        import tensorflow as tf

        h, w, c = x.shape[1], x.shape[2], x.shape[-1]
        if h is None or w is None:
            return super().call(x)
        (kh, kw), (sh, sw) = self.pool_size, self.strides

        def depthwise(t, k, strides):
            kernel = np.full((*k, c, 1), 1.0 / (k[0] * k[1]), "float32")
            return tf.nn.depthwise_conv2d(t, kernel, (1, *strides, 1), padding="SAME")

        if kh * kw <= 9:
            y = depthwise(x, (kh, kw), (sh, sw))
        else:
            y = x
            if (kh, sh) != (1, 1):
                y = depthwise(y, (kh, 1), (sh, 1))
            if (kw, sw) != (1, 1):
                y = depthwise(y, (1, kw), (1, sw))
        count = np.outer(same_window_counts(h, kh, sh), same_window_counts(w, kw, sw))
        if (count == kh * kw).all():
            return y
        return y * (kh * kw / count).astype("float32")[None, :, :, None]


def same_pool_eligible(layer):
    """True for a ``SameAveragePooling2D`` and a channels-last ``AveragePooling2D`` with
    ``padding="same"`` (``_ConvSameAveragePooling2D``)."""
    if type(layer) is SameAveragePooling2D:
        return True
    return (
        type(layer) is keras.layers.AveragePooling2D
        and layer.padding == "same"
        and layer.data_format == "channels_last"
    )


def avg_pool_eligible(layer):
    """True for a channels-last "valid" ``AveragePooling2D`` and for an ``AdaptiveAvgPool2D``
    whose (static) input size is a multiple of its output size, other than 1x1 (a mean)."""
    if isinstance(layer, AdaptiveAvgPool2D):
        try:
            h, w = layer.input.shape[1:3]
        except (AttributeError, ValueError):  # shared layer, or not called
            return False
        oh, ow = layer.output_size
        return (oh, ow) != (1, 1) and None not in (h, w) and not (h % oh or w % ow)
    return (
        type(layer) is keras.layers.AveragePooling2D
        and layer.padding == "valid"
        and layer.data_format == "channels_last"
    )


# Slope of the leaky ReLU that stands in for a ReLU after a transposed convolution in int8
# LiteRT: the smallest one XNNPACK takes when the output scale is the input's (a ReLU's int8
# output range is the input's positive part, so the ratio of scales is >= 1).
_RELU_LEAK = 1.0 / 256


class _DeconvLeakyReLU(keras.layers.LeakyReLU):
    """The leaky ReLU (slope ``_RELU_LEAK`` unless ``raise_deconv_leaks`` raised it) that stands
    in for a ReLU after a transposed convolution in an int8 LiteRT export
    (``inference_model(deconv_relu_as_leaky=True)``); a class of its own so that the export can
    tell it from a network's own leaky ReLUs."""


def raise_deconv_leaks(model, slopes):
    """Copy of ``model`` (an ``inference_model`` copy) whose ``_DeconvLeakyReLU`` layers named in
    ``slopes`` (``{name: slope}``) take those slopes; the other layers are shared."""

    def clone(layer):
        if isinstance(layer, _DeconvLeakyReLU) and layer.name in slopes:
            return _DeconvLeakyReLU(negative_slope=slopes[layer.name], name=layer.name)
        return layer

    return keras.models.clone_model(model, clone_function=clone)


def _is_plain_relu(layer):
    if isinstance(layer, keras.layers.ReLU):
        return (
            layer.max_value is None
            and float(layer.negative_slope) == 0.0
            and float(layer.threshold) == 0.0
        )
    return isinstance(layer, keras.layers.Activation) and getattr(
        layer.activation, "__name__", ""
    ) == "relu"


def deconv_relus(model, folded=()):
    """Names of the plain ReLU layers whose input is a ``Conv2DTranspose`` (directly or through a
    BatchNormalization in ``folded``, which becomes part of it). LiteRT cannot fuse a ReLU into
    TRANSPOSE_CONV (nor into the depth-to-space of its sub-pixel form), and XNNPACK does not run a
    standalone int8 RELU: each one split the int8 graphs of FDDWNet, ADSCNet, AGLNet and MiniNetV2
    into XNNPACK partitions."""
    names = []
    for layer, node in _nodes(model):
        if not _is_plain_relu(layer) or len(node.input_tensors) != 1:
            continue
        producer = node.input_tensors[0]._keras_history.operation
        if producer.name in folded:
            producer = folded[producer.name]
        if isinstance(producer, keras.layers.Conv2DTranspose):
            names.append(layer.name)
    return names


def selu_eligible(layer):
    """True for a ``keras.layers.Activation`` applying SELU."""
    return isinstance(layer, keras.layers.Activation) and getattr(
        layer.activation, "__name__", ""
    ) == "selu"


def max_form_prelus(model, names):
    """Copy of ``model`` (an ``inference_model`` copy) whose ``_LeakyFormPReLU`` layers ``names``
    (slopes in [0, 1]) become ``_MaxFormPReLU``: the same function."""
    wanted = set(names)

    def clone(layer):  # the other layers are shared with ``model``, weights and all
        if isinstance(layer, _LeakyFormPReLU) and layer.name in wanted:
            return _MaxFormPReLU((1, 1, 1), name=layer.name)
        return layer

    new = keras.models.clone_model(model, clone_function=clone)
    for name in wanted:
        slope = model.get_layer(name).slope
        new.get_layer(name).set_weights([np.full((1, 1, 1), slope, "float32")])
    return new


def prelu_slope(layer):
    """The slope of a built ``keras.layers.PReLU`` with one slope for the whole layer, else
    ``None``."""
    if not isinstance(layer, keras.layers.PReLU) or not layer.built:
        return None
    alpha = np.asarray(layer.alpha)
    return float(alpha.reshape(-1)[0]) if alpha.size == 1 else None


class _NativeBilinearUpsample(keras.layers.Layer):
    """``tfseg.layers.BilinearUpsample`` as one native resize (``keras.ops.image.resize``,
    bilinear, half-pixel centres: the same function, clamped at the borders alike), where the
    input's height and width are static at export; with a dynamic size it keeps the
    slice-and-weighted-sum form, which traces with unknown H/W.

    The slice form costs a few elementwise ops per output phase on the full upsampled tensor: one
    ONNX Resize / TFLite RESIZE_BILINEAR runs faster in float. Interleaved on an AMD Zen 4, 2
    threads, 512x1024, under load: Fast-SCNN onnxruntime 125.5 -> 103.5 ms, LiteRT fp32 151.5 ->
    119.9 ms, DDRNet onnxruntime 328 -> 291 ms. In int8 LiteRT it measured slower while other
    ops split the int8 graph (Fast-SCNN 67.5 -> 79.8 ms, session 13); once the graph ran inside
    XNNPACK, int8 RESIZE_BILINEAR was faster for 18 of 19 networks (Lite-HRNet 99.8 -> 86.5 ms,
    idle, session 18; docs/results.md), so int8 LiteRT uses it too.
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        from tfseg.layers.resize import upsample_bilinear

        h, w = x.shape[1], x.shape[2]
        if h is None or w is None or self.factor == 1:
            return upsample_bilinear(x, self.factor)
        size = (int(h) * self.factor, int(w) * self.factor)
        return keras.ops.image.resize(x, size, interpolation="bilinear", antialias=False)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        f = self.factor
        return (b, None if h is None else h * f, None if w is None else w * f, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class _FloatFinalResize(_NativeBilinearUpsample):
    """The ``BilinearUpsample`` that makes the logits in an int8 LiteRT export, as one native
    bilinear resize that ``convert_tflite`` keeps in float32 (``float_final_resize``).

    The int8 graph then ends in a DEQUANTIZE of the low-resolution class scores and one float
    RESIZE_BILINEAR, which XNNPACK runs, instead of the slice form's elementwise ops in int8 on the
    full-size tensor and a DEQUANTIZE of it. Fast-SCNN, 512x1024, 2 threads, AMD Zen 4, idle:
    22.6 -> 19.0 ms, 25 networks 3-24 % faster (docs/results.md), and the interpolation is no
    longer rounded to 8 bits.
    """


def output_layers(model):
    """The layer computing each output of ``model`` (None where unknown), looking through the
    linear activations and ``Identity`` layers that converters drop, such as the ``logits``
    layer of every tfseg model."""
    found = []
    for tensor in model.outputs:
        layer = None
        while getattr(tensor, "_keras_history", None) is not None:
            layer = tensor._keras_history.operation
            identity = isinstance(layer, keras.layers.Identity) or (
                isinstance(layer, keras.layers.Activation)
                and layer.activation is keras.activations.linear
            )
            inputs = layer._inbound_nodes[tensor._keras_history.node_index].input_tensors
            if not identity or len(inputs) != 1:
                break
            tensor = inputs[0]
        found.append(layer)
    return found


def final_resizes(model):
    """Names of the ``BilinearUpsample`` layers (factor > 1: the others write no op) that make
    ``model``'s logits (its first output)."""
    layers = output_layers(model)[:1]
    return [x.name for x in layers if isinstance(x, BilinearUpsample) and x.factor > 1]


def prelu_eligible(layer):
    """True for a built ``keras.layers.PReLU`` whose slopes are all in [0, 1]."""
    if not isinstance(layer, keras.layers.PReLU) or not layer.built:
        return False
    alpha = np.asarray(layer.alpha)
    return bool(np.all(alpha >= 0.0) and np.all(alpha <= 1.0))


class _SubPixelConvTranspose(keras.layers.Layer):
    """A ``Conv2DTranspose`` (stride s, kernel k with s <= k <= 2s, "same") as dense convolutions
    followed by depth-to-space: the same function, computed without the transposed-convolution
    kernels.

    Output pixel ``q*s + p`` of a stride-s transposed convolution with kernel k and "same" padding
    (``(k - s) // 2`` before) receives input pixel ``q + d`` through kernel tap
    ``p + (k - s) // 2 - d*s``; for s <= k <= 2s every tap has d in {-1, 0, 1}
    (``subpixel_weights`` writes them into one 3x3 kernel with ``s*s*C_out`` outputs, channel
    ``(py*s + px)*C + c`` for phase (py, px)). ``subpixel_window`` gives the rows (and columns) of
    that kernel that hold a tap: all three for k = 2s; d in {-1, 0} for k = 3, s = 2 (ADSCNet,
    ERFNet, LinkNet); d = 0 alone for k = s.

    - k = 2s, s = 2 (``allow_quadrants``): the phases split into four quadrants, each reading a 2x2
      window of the input; four 2x2 convolutions (one per quadrant, on the input padded by one and
      shifted), concatenated, then ``depth_to_space(2)`` (``phase_weights``). Only the non-zero
      taps are computed: 4/9 of the 3x3 form's multiply-adds, as many as the transposed
      convolution itself. UNet-ResNet18 at 512x1024, LiteRT fp32, 2 cores (five x2 upsamplings,
      7.7 of 13.8 GMACs were zero taps): 16 % faster than the 3x3 form in an interleaved run
      under load; the idle benchmark went from 543 to 342 ms (docs/results.md).
    - otherwise: one convolution over the window (3x3 "same" for k = 2s; 2x2 on the input padded
      by one row and column before it for k = 3, s = 2; 1x1 for k = s), then
      ``depth_to_space(s)``. For tfseg's x4 / x8 label-space upsamplings (few channels) the 3x3
      form measured as fast as the quadrant form, whose extra concatenation and second
      depth-to-space pass over the full-size output cost what the zero taps cost.

    Both run several times faster on CPU runtimes than their transposed-convolution kernels
    (RTSeg's x8 label-space upsampling: LiteRT ~300 ms -> ~70 ms, onnxruntime ~210 -> ~95 ms at
    512x1024 on 2 cores). onnxruntime's own ConvTranspose is faster than both forms at k = 4,
    s = 2, so the ONNX export rewrites those only from s >= 4 (``REWRITES`` in ``pipeline.py``).
    """

    def __init__(self, filters, stride, activation=None, allow_quadrants=True, window=(0, 2),
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.stride = int(stride)
        self.activation = keras.activations.get(activation)
        self.allow_quadrants = bool(allow_quadrants)
        self.window = (int(window[0]), int(window[1]))

    @property
    def quadrants(self):
        return self.allow_quadrants and self.stride == 2 and self.window == (0, 2)

    def build(self, input_shape):
        s, c_in = self.stride, input_shape[-1]
        if self.quadrants:
            self.kernels = [
                self.add_weight(name=f"kernel_{qy}{qx}", shape=(2, 2, c_in, self.filters))
                for qy in (0, 1)
                for qx in (0, 1)
            ]
            self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
        else:
            n, s2c = self.window[1] - self.window[0] + 1, s * s * self.filters
            self.kernel = self.add_weight(name="kernel", shape=(n, n, c_in, s2c))
            self.bias = self.add_weight(name="bias", shape=(s2c,), initializer="zeros")

    def call(self, x):
        import tensorflow as tf

        s = self.stride
        if not self.quadrants:
            a0, a1 = self.window
            if (a0, a1) == (0, 2):
                y = tf.nn.conv2d(x, self.kernel, strides=1, padding="SAME")
            else:  # input rows q + a0 - 1 .. q + a1 - 1 for output row q
                pads = [[0, 0], [1 - a0, a1 - 1], [1 - a0, a1 - 1], [0, 0]]
                if a0 != 1 or a1 != 1:
                    x = tf.pad(x, pads)
                y = tf.nn.conv2d(x, self.kernel, strides=1, padding="VALID")
            return self.activation(tf.nn.depth_to_space(y + self.bias, s))
        xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        parts = []
        for (qy, qx), kernel in zip(((0, 0), (0, 1), (1, 0), (1, 1)), self.kernels):
            window = xp[:, qy : qy + h + 1, qx : qx + w + 1, :]
            parts.append(tf.nn.conv2d(window, kernel, strides=1, padding="VALID"))
        y = tf.concat(parts, axis=-1) + tf.tile(self.bias, [4])
        return self.activation(tf.nn.depth_to_space(y, 2))

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        s = self.stride
        return (b, None if h is None else h * s, None if w is None else w * s, self.filters)


def subpixel_eligible(layer):
    """Whether a Conv2DTranspose can become ``_SubPixelConvTranspose`` (square stride s >= 2,
    square kernel k with s <= k <= 2s, "same" (or "valid" where k = s: the same function), no
    dilation or output padding, channels-last)."""
    if type(layer) is not keras.layers.Conv2DTranspose:
        return False
    sy, sx = layer.strides
    ky, kx = layer.kernel_size
    return (
        sy == sx >= 2
        and ky == kx
        and sy <= ky <= 2 * sy
        and (layer.padding == "same" or ky == sy)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.output_padding is None
        and layer.data_format == "channels_last"
    )


def _subpixel_taps(k, s):
    """(a, p, ky) for every tap of a "same" transposed convolution with kernel k and stride s:
    row a of the 3x3 sub-pixel kernel (input row q + a - 1), output phase p, kernel row ky."""
    pad = (k - s) // 2
    taps = []
    for a in range(3):
        for p in range(s):
            ky = (1 - a) * s + p + pad
            if 0 <= ky < k:
                taps.append((a, p, ky))
    return taps


def subpixel_window(kernel_size, stride):
    """The rows (a0, a1) of the 3x3 sub-pixel kernel that hold a tap (see the layer)."""
    rows = [a for a, _, _ in _subpixel_taps(int(kernel_size), int(stride))]
    return min(rows), max(rows)


def subpixel_weights(kernel, bias, stride, window=(0, 2)):
    """Kernel (k, k, C_out, C_in) and bias of a transposed convolution -> kernel
    (n, n, C_in, s*s*C_out), n = a1 - a0 + 1 for ``window`` = (a0, a1), and bias of the equivalent
    sub-pixel convolution (see the layer)."""
    s, k = int(stride), kernel.shape[0]
    c_out, c_in = kernel.shape[2], kernel.shape[3]
    out = np.zeros((3, 3, c_in, s, s, c_out), dtype=np.float64)
    taps = _subpixel_taps(k, s)
    for a, p, ky in taps:
        for b, r, kx in taps:
            out[a, b, :, p, r, :] = kernel[ky, kx].T
    a0, a1 = window
    n = a1 - a0 + 1
    out = out[a0 : a1 + 1, a0 : a1 + 1]
    return out.reshape(n, n, c_in, s * s * c_out), np.tile(np.asarray(bias, np.float64), s * s)


def phase_weights(kernel, bias, stride):
    """Kernel (2s, 2s, C_out, C_in) and bias of a transposed convolution with even stride s ->
    the four 2x2 quadrant kernels (2, 2, C_in, h*h*C_out), h = s/2, in the order (0,0), (0,1),
    (1,0), (1,1), and the bias (h*h*C_out,) of ``_SubPixelConvTranspose``'s even-stride form."""
    s = int(stride)
    if s % 2:
        raise ValueError(f"phase_weights needs an even stride, got {s}")
    h = s // 2
    k3, b3 = subpixel_weights(kernel, bias, s)
    c_in, c_out = k3.shape[2], kernel.shape[2]
    k3 = k3.reshape(3, 3, c_in, s, s, c_out)
    kernels = [
        k3[qy : qy + 2, qx : qx + 2, :, qy * h : (qy + 1) * h, qx * h : (qx + 1) * h, :].reshape(
            2, 2, c_in, h * h * c_out
        )
        for qy in (0, 1)
        for qx in (0, 1)
    ]
    return kernels, b3[: h * h * c_out]


class _FoldedBatchNorm(keras.layers.Layer):
    """What is left of a BatchNormalization folded into its convolution: the identity."""

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def _nodes(model):
    """The model's own (layer, node) pairs, in topological order."""
    out = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation is not None and not isinstance(
                node.operation, keras.layers.InputLayer
            ):
                out.append((node.operation, node))
    return out


def find_foldable_batchnorms(model):
    """``(pairs, unfolded)``: ``pairs`` maps a BN layer name to its convolution layer; ``unfolded``
    lists the names of BN layers that cannot be folded, with the reason."""
    nodes = _nodes(model)
    consumers = {}
    for _, node in nodes:
        for t in node.input_tensors:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    for t in model.outputs:
        consumers[id(t)] = consumers.get(id(t), 0) + 1
    node_count = {}
    for layer, _ in nodes:
        node_count[layer.name] = node_count.get(layer.name, 0) + 1
    pairs, unfolded = {}, {}
    for layer, node in nodes:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        reason = None
        inputs = node.input_tensors
        axis = layer.axis if isinstance(layer.axis, int) else None
        producer = inputs[0]._keras_history.operation if len(inputs) == 1 else None
        if node_count[layer.name] != 1:
            reason = "layer is shared"
        elif axis not in (-1, len(inputs[0].shape) - 1):
            reason = f"normalises axis {layer.axis}, not channels-last"
        elif not isinstance(producer, _CONV_TYPES):
            reason = (
                f"input comes from {type(producer).__name__} {getattr(producer, 'name', '?')!r}"
            )
        elif node_count.get(producer.name) != 1:
            reason = f"convolution {producer.name!r} is shared"
        elif consumers.get(id(inputs[0]), 0) != 1:
            reason = f"output of {producer.name!r} is also used elsewhere"
        elif keras.activations.serialize(producer.activation) != "linear":
            reason = f"convolution {producer.name!r} has an activation"
        elif producer.data_format != "channels_last":
            reason = f"convolution {producer.name!r} is channels_first"
        if reason:
            unfolded[layer.name] = reason
        else:
            pairs[layer.name] = producer
    return pairs, unfolded


def _bn_scale_shift(bn):
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones_like(var)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros_like(var)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale, beta - mean * scale


def _folded_weights(conv, bn):
    """New ``[kernel(s)..., bias]`` of ``conv`` with ``bn`` folded in (float64 math)."""
    scale, shift = _bn_scale_shift(bn)
    weights = [np.asarray(w, np.float64) for w in conv.get_weights()]
    bias = weights.pop() if conv.use_bias else np.zeros_like(scale)
    if isinstance(conv, keras.layers.SeparableConv2D):
        depthwise, pointwise = weights
        weights = [depthwise, pointwise * scale]  # pointwise (1, 1, cin*m, cout)
    elif isinstance(conv, keras.layers.DepthwiseConv2D):
        (kernel,) = weights  # (kh, kw, cin, m); output channel = c * m + j
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
        weights = [kernel]
    elif isinstance(conv, keras.layers.Conv2DTranspose):
        (kernel,) = weights  # (kh, kw, cout, cin)
        weights = [kernel * scale[None, None, :, None]]
    else:
        (kernel,) = weights  # (kh, kw, cin / groups, cout)
        weights = [kernel * scale]
    return weights + [bias * scale + shift]


def inference_model(
    model,
    *,
    fold_batchnorm=True,
    strided_pointwise=True,
    expand_depthwise=False,
    grouped_conv="keras",
    subpixel_min_stride=None,
    subpixel_quadrants=True,
    subpixel_any_kernel=True,
    prelu_as_max=False,
    native_resize=False,
    transpose_shuffle=False,
    shuffle_as_conv=False,
    selu_as_elu=False,
    unpool_masks=False,
    avg_pool_as_conv=False,
    same_pool_as_conv=False,
    deconv_relu_as_leaky=False,
    float_final_resize=False,
    nearest_as_d2s=False,
):
    """Copy of functional ``model`` for export: BN folded, some layers rewritten.

    ``strided_pointwise``: ``SubsampledPointwiseConv2D`` layers (a training-time workaround,
    ``tfseg.layers.conv``) become the plain strided 1x1 ``Conv2D`` they compute, with the same
    weights: their subsample is a STRIDED_SLICE with steps in LiteRT, which XNNPACK does not run
    (DFANet's int8 graph: 9 of them, 10 partitions), ``info["strided_pointwise"]``.

    ``expand_depthwise`` (for LiteRT): depthwise convolutions with a channel multiplier above 1
    become a 0/1 1x1 convolution that repeats the channels and a depthwise convolution of
    multiplier 1 (``_ExpandedDepthwiseConv2D``), ``info["expanded_depthwise"]``.

    ``float_final_resize`` (for int8 LiteRT): the ``BilinearUpsample`` that makes the logits
    (``final_resizes``) becomes ``_FloatFinalResize``, which ``convert_tflite`` keeps in float32,
    ``info["float_final_resize"]``.

    ``unpool_masks`` (for int8 LiteRT): ``PoolSwitches`` / ``MaxUnpool2D`` pairs become
    ``_MaskPoolSwitches`` / ``_MaskMaxUnpool2D``, ``info["unpool_masks"]``.
    ``nearest_as_d2s`` (for LiteRT): nearest ``UpSampling2D`` layers by a power of two become
    concatenations + depth-to-space (``_DepthToSpaceNearest``), ``info["nearest_as_d2s"]``.

    ``avg_pool_as_conv`` (for int8 LiteRT): "valid" average poolings (``avg_pool_eligible``)
    become depthwise convolutions of constant weights, ``info["avg_pool_as_conv"]``.
    ``same_pool_as_conv`` (for int8 LiteRT): "same" average poolings (``same_pool_eligible``)
    become depthwise convolutions and a multiply by the border correction
    (``_ConvSameAveragePooling2D``), ``info["same_pool_as_conv"]``.

    ``deconv_relu_as_leaky`` (for int8 LiteRT): the ReLUs of ``deconv_relus`` become leaky ReLUs
    of slope ``_RELU_LEAK`` (XNNPACK runs int8 LEAKY_RELU, not a standalone int8 RELU; in int8
    the two differ by at most about one quantization step), ``info["deconv_relu_as_leaky"]``.

    ``native_resize``: ``BilinearUpsample`` layers become one native bilinear resize where the
    size is static (``_NativeBilinearUpsample``), ``info["native_resizes"]``.

    ``transpose_shuffle``: ``ChannelShuffle`` layers become reshape -> transpose -> reshape where
    the size is static (``_TransposeChannelShuffle``), ``info["transpose_shuffles"]``.

    ``shuffle_as_conv`` (for OpenVINO and onnxruntime int8): ``ChannelShuffle`` layers become a
    1x1 convolution by the permutation matrix (``_ConvChannelShuffle``; before
    ``transpose_shuffle``), ``info["shuffle_as_conv"]``.

    ``selu_as_elu``: SELU activation layers become ``_EluFormSELU`` (for LiteRT),
    ``info["selu_as_elu"]``.

    ``prelu_as_max`` (for int8 LiteRT): a PReLU with one slope becomes a leaky ReLU
    (``_LeakyFormPReLU``, ``info["prelu_as_leaky"]``); one with a slope per channel, all in
    [0, 1], becomes ``max(x, alpha x)`` (``_MaxFormPReLU``); the others stay PReLU
    (``info["prelu_kept"]``).

    ``subpixel_min_stride``: transposed convolutions with at least this stride that
    ``subpixel_eligible`` accepts become dense convolutions + depth-to-space
    (``_SubPixelConvTranspose``; None: none); ``subpixel_quadrants=False`` keeps the 3x3 form at
    stride 2 too; ``subpixel_any_kernel=False`` rewrites only kernels 2s (the rule until session
    21; kept to measure against, ``experiments/export_rewrites.py --rewrite=deconv_kernels``).
    Returns ``(new_model, info)``; ``info`` = ``{"batchnorm_layers": int, "folded": [bn names],
    "unfolded": {bn name: reason}, "native_grouped_convs": int, "subpixel_deconvs": [names],
    "prelu_as_max": [names], "prelu_kept": [names]}``.
    Layer names are kept, so op names in converted graphs still point at the original layers.
    """
    if grouped_conv not in ("keras", "native"):
        raise ValueError(f"grouped_conv must be 'keras' or 'native', got {grouped_conv!r}")
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError("inference_model needs a functional keras.Model")
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if fold_batchnorm:
        pairs, unfolded = find_foldable_batchnorms(model)
    else:
        pairs, unfolded = {}, {bn.name: "folding disabled" for bn in bns}
    folded_convs = {conv.name: bn_name for bn_name, conv in pairs.items()}
    native, subpixel, prelu_max, prelu_kept, resizes = [], [], [], [], []
    prelu_leaky, shuffles, selus, unpools, pools, nearests = [], [], [], [], [], []
    same_pools, strided, expanded, conv_shuffles = [], [], [], []
    leaky_relus = set(deconv_relus(model, pairs)) if deconv_relu_as_leaky else set()
    finals = final_resizes(model) if float_final_resize else []

    def clone(layer):
        config = layer.get_config()
        if layer.name in pairs:
            return _FoldedBatchNorm(name=layer.name)
        if layer.name in leaky_relus:
            return _DeconvLeakyReLU(negative_slope=_RELU_LEAK, name=layer.name)
        if avg_pool_as_conv and avg_pool_eligible(layer):
            pools.append(layer.name)
            cls = (
                _ConvAdaptiveAvgPool2D
                if isinstance(layer, AdaptiveAvgPool2D)
                else _ConvAveragePooling2D
            )
            return cls.from_config(config)
        if same_pool_as_conv and same_pool_eligible(layer):
            same_pools.append(layer.name)
            return _ConvSameAveragePooling2D(layer.pool_size, layer.strides, name=layer.name)
        if nearest_as_d2s and nearest_upsample_eligible(layer):
            nearests.append(layer.name)
            return _DepthToSpaceNearest(layer.size[0], name=layer.name)
        if unpool_masks and isinstance(layer, PoolSwitches):
            unpools.append(layer.name)
            return _MaskPoolSwitches(name=layer.name)
        if unpool_masks and isinstance(layer, MaxUnpool2D):
            unpools.append(layer.name)
            return _MaskMaxUnpool2D(name=layer.name)
        if selu_as_elu and selu_eligible(layer):
            selus.append(layer.name)
            return _EluFormSELU(name=layer.name)
        if shuffle_as_conv and isinstance(layer, ChannelShuffle):
            conv_shuffles.append(layer.name)
            return _ConvChannelShuffle(layer.groups, name=layer.name)
        if transpose_shuffle and isinstance(layer, ChannelShuffle):
            shuffles.append(layer.name)
            return _TransposeChannelShuffle(layer.groups, name=layer.name)
        if layer.name in finals:
            return _FloatFinalResize(layer.factor, name=layer.name)
        if native_resize and isinstance(layer, BilinearUpsample):
            resizes.append(layer.name)
            return _NativeBilinearUpsample(layer.factor, name=layer.name)
        if prelu_as_max and isinstance(layer, keras.layers.PReLU):
            if prelu_slope(layer) is not None:
                prelu_leaky.append(layer.name)
                return _LeakyFormPReLU(prelu_slope(layer), name=layer.name)
            if prelu_eligible(layer):
                prelu_max.append(layer.name)
                return _MaxFormPReLU(tuple(layer.alpha.shape), name=layer.name)
            prelu_kept.append(layer.name)
        if layer.name in folded_convs:
            config["use_bias"] = True
        if (
            subpixel_min_stride is not None
            and subpixel_eligible(layer)
            and layer.strides[0] >= subpixel_min_stride
            and (subpixel_any_kernel or layer.kernel_size[0] == 2 * layer.strides[0])
        ):
            subpixel.append(layer.name)
            return _SubPixelConvTranspose(
                layer.filters,
                layer.strides[0],
                activation=config["activation"],
                allow_quadrants=subpixel_quadrants,
                window=subpixel_window(layer.kernel_size[0], layer.strides[0]),
                name=layer.name,
            )
        if (
            grouped_conv == "native"
            and isinstance(layer, keras.layers.Conv2D)
            and getattr(layer, "groups", 1) > 1
        ):
            native.append(layer.name)
            return _NativeGroupedConv2D.from_config(config)
        if expand_depthwise and expand_depthwise_eligible(layer):
            expanded.append(layer.name)
            return _ExpandedDepthwiseConv2D.from_config(config)
        if strided_pointwise and type(layer) is SubsampledPointwiseConv2D:
            strided.append(layer.name)
            return keras.layers.Conv2D.from_config(config)
        return layer.__class__.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    originals = {layer.name: layer for layer in model.layers}
    for layer in new.layers:
        old = originals.get(layer.name)
        if old is None or layer.name in pairs or not old.weights:
            continue
        if layer.name in folded_convs:
            weights = _folded_weights(old, originals[folded_convs[layer.name]])
        else:
            weights = old.get_weights()
        if layer.name in subpixel:
            if len(weights) == 1:
                weights.append(np.zeros(weights[0].shape[2]))
            if layer.quadrants:
                kernels, bias = phase_weights(weights[0], weights[1], layer.stride)
                weights = [*kernels, bias]
            else:
                weights = list(
                    subpixel_weights(weights[0], weights[1], layer.stride, layer.window)
                )
        layer.set_weights(
            [np.asarray(w).astype(v.dtype) for w, v in zip(weights, layer.get_weights())]
        )
    info = {
        "batchnorm_layers": len(bns),
        "folded": sorted(pairs),
        "unfolded": dict(sorted(unfolded.items())),
        "native_grouped_convs": len(native),
        "subpixel_deconvs": sorted(subpixel),
        "prelu_as_leaky": sorted(prelu_leaky),
        "prelu_as_max": sorted(prelu_max),
        "prelu_kept": sorted(prelu_kept),
        "native_resizes": sorted(resizes),
        "transpose_shuffles": sorted(shuffles),
        "shuffle_as_conv": sorted(conv_shuffles),
        "selu_as_elu": sorted(selus),
        "unpool_masks": sorted(unpools),
        "nearest_as_d2s": sorted(nearests),
        "avg_pool_as_conv": sorted(pools),
        "same_pool_as_conv": sorted(same_pools),
        "strided_pointwise": sorted(strided),
        "expanded_depthwise": sorted(expanded),
        "deconv_relu_as_leaky": sorted(leaky_relus),
        "float_final_resize": finals,
    }
    return new, info


_SUFFIX = re.compile(r"_\d+$")


def layer_for_op(op_name, layer_names):
    """The Keras layer an op (TF, TFLite or ONNX node name) came from, or ``None``.

    Op names look like ``"skipnet_mobilenet_1/mobilenet_conv_dw_3_1/depthwise"``: one name-scope
    component per model / layer, where TensorFlow may have appended ``_<n>`` to make the scope
    unique. The innermost component naming a layer wins.
    """
    names = set(layer_names)
    found = None
    for part in re.split(r"[/;:]", op_name or ""):
        stripped = _SUFFIX.sub("", part)
        if stripped in names:
            found = stripped
        elif part in names:
            found = part
    return found


# --------------------------------------------------------------------------------------------------
# artifact outputs
# --------------------------------------------------------------------------------------------------

# Output names of every artifact, in this order: ``logits`` (B, H, W, C) and, for a model trained
# with ``--task=instance``, ``instance``: the predicted instance centre (y, x) of every pixel, in
# input pixels (B, H, W, 2), nearest-upsampled as at test time (``tfseg.instance.module``).
LOGITS = "logits"
INSTANCE = "instance"
OUTPUT_NAMES = (LOGITS, INSTANCE)


def output_names(model):
    """``["logits"]``, or ``["logits", "instance"]`` for a two-output ``--task=instance`` model."""
    from tfseg.export_lib.errors import ExportError
    from tfseg.instance.model import has_instance_head

    n = len(model.outputs)
    if n == 1:
        return [LOGITS]
    if has_instance_head(model):
        return [LOGITS, INSTANCE]
    raise ExportError(
        f"model {model.name!r} has {n} outputs; tfseg exports models with one output (logits) or "
        "two (logits and instance centres, from --task=instance)"
    )


def weight_constants(model):
    """``[(variable, value)]`` of every variable of ``model``, read now: ``named_outputs(...,
    constants=...)`` traces them into the graph as constants instead of variable reads.

    The converters (LiteRT, tf2onnx) freeze every variable into a constant anyway; a trace that
    already holds constants has nothing to freeze, and both the trace and the conversion are
    faster (FDDWNet at 64x96, idle Zen 3: LiteRT trace + convert 5.2 -> 3.5 s, ONNX 8.7 -> 6.7 s;
    the same file, the same outputs)."""
    return [(v, np.asarray(v)) for v in model.variables]


def named_outputs(model, images, names=None, constants=None):
    """``{name: tensor}`` of ``model(images)`` at inference, named by :func:`output_names`;
    ``constants``: :func:`weight_constants` of ``model`` (read when traced, not as variables)."""
    names = names or output_names(model)
    if constants is None:
        out = model(images, training=False)
    else:  # each value becomes a constant of the graph being traced
        with keras.StatelessScope(state_mapping=constants):
            out = model(images, training=False)
    if not isinstance(out, (list, tuple)):
        out = [out]
    return dict(zip(names, out))
