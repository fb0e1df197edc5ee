"""Quantization-aware fine-tuning (``python -m tfseg.train --qat --init_model=TRAINED.keras``).

Post-training int8 quantisation (``tfseg.export --format=tflite --precision=int8``) rounds the
weights and every intermediate tensor of a model trained in float. QAT fine-tunes the float weights
for a short while with that rounding simulated in the forward pass (straight-through gradient), so
the weights settle where 8 bits cost less. The result is a plain float tfseg model: the export then
runs its usual calibration on the new weights.

What is simulated, and why so (the LiteRT int8 converter, TF 2.21):

- **Weights**: int8, symmetric, per output channel, narrow range [-127, 127] (scale = max|w| / 127
  per channel), as the converter quantises CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED /
  TRANSPOSE_CONV kernels. The converter quantises the *BatchNorm-folded* kernel ``w * s`` (``s`` =
  gamma / sqrt(var + eps), one factor per output channel). Per-channel symmetric quantisation is
  invariant to a per-channel factor: ``fq(w * s) = fq(w) * s`` exactly (the scale follows
  ``|s|`` and rounding is odd-symmetric), so quantising the raw kernel here is the same as
  quantising the folded one, without folding anything. (The bias becomes int32 at the product of the
  input and weight scales: negligible, not simulated.) Layers: ``Conv1D/2D`` (and subclasses that
  keep ``Conv``'s ``call``, e.g. grouped convolutions), ``DepthwiseConv2D``, ``SeparableConv2D``
  (both kernels), ``Conv2DTranspose``, ``Dense``; any other layer with a kernel is left in float
  and listed in the summary (``unquantized_kernels``). The export rewrites stride >= 2 transposed
  convolutions as sub-pixel convolutions, whose rearranged kernel it quantises per rearranged
  channel: close to, not exactly, what is simulated here.
- **Activations**: 8-bit asymmetric, one range per tensor, at the layer outputs the converter
  stores as int8 tensors: the model input, and the output of every layer except (a) a convolution
  followed by a BatchNorm that ``tfseg.export_lib.graph.find_foldable_batchnorms`` folds (the
  exporter's own rule: the BN output is the stored tensor), (b) a convolution / dense / BatchNorm /
  addition whose only consumer is a ReLU or ReLU6 (fused into the op by the converter), and (c)
  layers whose int8 kernel keeps its input's scale (pooling by max, resizing, padding, cropping,
  reshaping, channel shuffles, dropout, ``StrideGuard``). The range is the running minimum and
  maximum of the tensor over the training batches (always including 0), as the converter's
  calibration takes the overall min / max of each tensor over its images; it stops moving after
  ``freeze_steps`` training steps. The ranges are non-trainable variables (``FakeQuant``).
- **BatchNorm** is frozen (``trainable = False``: moving statistics in the forward pass, gamma and
  beta fixed): the deployed model folds the moving statistics, so training against them is the
  faithful simulation (Jacob et al., CVPR 2018, sec. 3.2; Krishnamoorthi, arXiv:1806.08342,
  sec. 3.2, freeze BN statistics when fine-tuning). The stripped model has it trainable again.

The fake-quant model is built with ``keras.models.clone_model(model, clone_function=identity,
call_function=...)``: it *reuses* the layers of the float model, so both share every variable.
Kernel layers are wrapped in ``QuantizedKernel`` (same name as the layer it wraps), activation
quantisers are ``FakeQuant`` layers named ``<layer>_fq``. ``strip_quantization`` goes the other way
and returns the float model with the original layers and names (used by ``finalize`` to write
``model.keras``). Checkpoints of a ``--qat`` run hold the fake-quant model (both layer classes are
registered), so ``--resume`` continues with its ranges.

Fake quantisation is ``keras.quantizers.fake_quant_with_min_max_vars`` (on TensorFlow:
``tf.quantization.fake_quant_with_min_max_vars[_per_channel]``; straight-through gradient inside
the range, zero outside). Checked against TF-MOT's default 8-bit scheme
(``tensorflow_model_optimization/python/core/quantization/keras/default_8bit``: per-channel
symmetric narrow-range weights, per-tensor asymmetric activations) and the TFLite quantisation
spec (https://ai.google.dev/edge/litert/models/quantization_spec); no code taken from either.
"""

import collections

import keras
from keras import ops

FREEZE_STEPS = 300  # training steps after which the activation ranges stop moving

_PASS_THROUGH = (
    keras.layers.InputLayer,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.MaxPooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
    keras.layers.Permute,
)
# tfseg layers whose int8 kernels (RESIZE_BILINEAR, DEPTH_TO_SPACE, SPLIT, GATHER, SELECT ...) keep
# the input's scale, or that are the identity at inference
_PASS_THROUGH_NAMES = {
    "StrideGuard",
    "CropToInput",
    "BilinearUpsample",
    "ResizeLike",
    "ChannelShuffle",
    "ChannelSplit",
    "PixelShuffle",
    "MaxUnpool2D",
    "PoolSwitches",  # window-position codes 0..3 that MaxUnpool2D compares exactly: not rounded
}
_KERNEL_TYPES = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
    keras.layers.Dense,
)
_CONV_CALL = keras.layers.Conv2D.__mro__[1].call  # BaseConv.call


def _fake_quant(x, lo, hi, narrow_range=False, axis=None):
    """``x`` rounded to 8 bits in [lo, hi] (float32 math, result in ``x``'s dtype)."""
    dtype = x.dtype
    y = keras.quantizers.fake_quant_with_min_max_vars(
        ops.cast(x, "float32"), lo, hi, num_bits=8, narrow_range=narrow_range, axis=axis
    )
    return ops.cast(y, dtype)


def quantize_kernel(kernel, axis):
    """``kernel`` rounded as the converter stores it: int8 symmetric per output channel ``axis``
    (narrow range, scale max|w| / 127), dequantised; the range takes no gradient."""
    axis = axis % len(kernel.shape)
    reduce_axes = tuple(i for i in range(len(kernel.shape)) if i != axis)
    k = ops.cast(kernel, "float32")
    bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(k), axis=reduce_axes), 1e-12))
    return _fake_quant(k, -bound, bound, narrow_range=True, axis=axis)


@keras.saving.register_keras_serializable(package="tfseg")
class FakeQuant(keras.layers.Layer):
    """8-bit asymmetric per-tensor fake quantisation with a running min / max range.

    In training (``training=True``) and for the first ``freeze_steps`` calls, the range grows to
    the batch's min / max (it always includes 0, as TFLite's ranges do); the input is then rounded
    to 256 levels of the range. At inference the stored range is used. ``steps`` counts the updates.
    """

    def __init__(self, freeze_steps=FREEZE_STEPS, **kwargs):
        super().__init__(**kwargs)
        self.freeze_steps = int(freeze_steps)

    def build(self, input_shape):
        self.range_min = self.add_weight(
            name="range_min", shape=(), initializer="zeros", trainable=False
        )
        self.range_max = self.add_weight(
            name="range_max", shape=(), initializer="zeros", trainable=False
        )
        self.steps = self.add_weight(name="steps", shape=(), initializer="zeros", trainable=False)

    def call(self, x, training=None):
        if training:
            xf = ops.stop_gradient(ops.cast(x, "float32"))
            moving = ops.cast(self.steps < self.freeze_steps, "float32")
            lo = ops.minimum(self.range_min, ops.min(xf))
            hi = ops.maximum(self.range_max, ops.max(xf))
            lo = moving * lo + (1.0 - moving) * self.range_min
            hi = moving * hi + (1.0 - moving) * self.range_max
            self.range_min.assign(lo)
            self.range_max.assign(hi)
            self.steps.assign(self.steps + moving)
        else:
            lo, hi = self.range_min, self.range_max
        # an untouched range (0, 0) would map everything to 0: pass the input through instead
        ready = ops.cast(hi > lo, x.dtype)
        hi = ops.maximum(hi, lo + 1e-6)
        return ready * _fake_quant(x, lo, hi) + (1 - ready) * x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "freeze_steps": self.freeze_steps}


@keras.saving.register_keras_serializable(package="tfseg")
class QuantizedKernel(keras.layers.Wrapper):
    """Runs the wrapped convolution / dense layer with its kernel(s) int8 fake-quantised per output
    channel (``quantize_kernel``); bias and activation as the layer has them. Shares the layer's
    variables. ``strip_quantization`` returns the layer itself."""

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("name", layer.name)
        kwargs.setdefault("dtype", layer.dtype_policy)
        super().__init__(layer, **kwargs)

    def build(self, input_shape=None):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, x):
        layer = self.layer
        dtype = layer.compute_dtype

        def kernel(variable, axis):
            return ops.cast(quantize_kernel(variable, axis), dtype)

        if isinstance(layer, keras.layers.SeparableConv2D):
            y = ops.separable_conv(
                x,
                _depthwise(layer, dtype),
                kernel(layer.pointwise_kernel, -1),
                strides=layer.strides,
                padding=layer.padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            y = ops.depthwise_conv(
                x,
                _depthwise(layer, dtype),
                strides=layer.strides,
                padding=layer.padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            y = ops.conv_transpose(
                x,
                kernel(layer.kernel, -2),  # (kh, kw, out, in)
                strides=list(layer.strides),
                padding=layer.padding,
                output_padding=layer.output_padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
        elif isinstance(layer, keras.layers.Dense):
            y = ops.matmul(x, kernel(layer.kernel, -1))
        else:  # Conv1D / Conv2D (grouped ones too: convolution_op handles the groups)
            y = layer.convolution_op(x, kernel(layer.kernel, -1))
        if layer.use_bias:
            y = ops.add(y, ops.cast(layer.bias, dtype))
        return layer.activation(y) if layer.activation is not None else y

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)


def _depthwise(layer, dtype):
    """A depthwise kernel (kh, kw, C, m) quantised per output channel ``c * m + j``."""
    k = layer.depthwise_kernel if isinstance(layer, keras.layers.SeparableConv2D) else layer.kernel
    kh, kw, c, m = k.shape
    flat = quantize_kernel(ops.reshape(k, (kh, kw, c * m)), -1)
    return ops.cast(ops.reshape(flat, (kh, kw, c, m)), dtype)


def quantizable_kernel(layer):
    """Whether ``QuantizedKernel`` can run ``layer`` (a layer type whose ``call`` it reproduces,
    channels-last, no LoRA)."""
    if not isinstance(layer, _KERNEL_TYPES) or getattr(layer, "lora_enabled", False):
        return False
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return False
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)) and not isinstance(
        layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
                keras.layers.Conv2DTranspose)
    ):
        return type(layer).call is _CONV_CALL  # subclasses with their own call: left in float
    if isinstance(layer, keras.layers.Dense):
        return type(layer).call is keras.layers.Dense.call and len(layer.kernel.shape) == 2
    return True


def _consumers(model):
    """``{layer name: [consumer layer names, or None for a model output]}`` from the model's config
    (the public description of its graph)."""
    config = model.get_config()
    consumers = collections.defaultdict(list)

    def histories(value):
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__":
                yield value["config"]["keras_history"][0]
            else:
                for v in value.values():
                    yield from histories(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from histories(v)

    for entry in config["layers"]:
        for node in entry.get("inbound_nodes", []):
            for producer in histories(node):
                consumers[producer].append(entry["name"])
    outputs = config["output_layers"]
    outputs = [outputs] if outputs and isinstance(outputs[0], str) else outputs
    for out in outputs:
        consumers[out[0]].append(None)
    return consumers


def _fusable_activation(layer):
    """A ReLU / ReLU6 the converter fuses into the preceding op."""
    if isinstance(layer, keras.layers.ReLU):
        return (
            layer.max_value in (None, 6.0)
            and not layer.negative_slope
            and not layer.threshold
        )
    if type(layer) is keras.layers.Activation:
        return keras.activations.serialize(layer.activation) in ("relu", "relu6")
    return False


def _quantized_outputs(model):
    """``(names of layers whose outputs get a FakeQuant, names of layers whose output does not,
    with the reason)``."""
    from tfseg.export_lib.graph import find_foldable_batchnorms

    pairs, _ = find_foldable_batchnorms(model)
    folded_convs = {conv.name for conv in pairs.values()}
    consumers = _consumers(model)
    layers = {layer.name: layer for layer in model.layers}
    quantized, skipped = [], {}
    for layer in model.layers:
        name = layer.name
        users = consumers.get(name, [])
        if isinstance(layer, _PASS_THROUGH) or type(layer).__name__ in _PASS_THROUGH_NAMES:
            skipped[name] = "keeps its input's scale"
        elif name in folded_convs:
            skipped[name] = "BatchNorm folded into it"
        elif (
            isinstance(layer, (*_KERNEL_TYPES, keras.layers.BatchNormalization, keras.layers.Add))
            and len(users) == 1
            and users[0] is not None
            and _fusable_activation(layers[users[0]])
        ):
            skipped[name] = f"activation {users[0]!r} fused into it"
        else:
            quantized.append(name)
    return quantized, skipped


def quantize_model(model, *, freeze_steps=FREEZE_STEPS):
    """The fake-quant training copy of functional tfseg ``model`` (sharing its variables).

    Returns ``(qat_model, info)``; ``info`` = ``{"quantized_kernels": int, "activation_quantizers":
    int, "unquantized_kernels": [names], "frozen_batchnorms": int, "freeze_steps": int}``. A model
    that is already quantized, or is not functional, is a ValueError.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise ValueError(f"--qat needs a functional keras.Model, got {type(model).__name__}")
    if is_quantized(model):
        raise ValueError(f"model {model.name!r} already has fake-quant layers")
    quantized, _ = _quantized_outputs(model)
    quantized = set(quantized)
    names = {layer.name for layer in model.layers}
    wrapped, unquantized = [], []
    for layer in model.layers:
        if quantizable_kernel(layer):
            wrapped.append(layer.name)
        elif any("kernel" in w.path.rsplit("/", 1)[-1] for w in layer.weights):
            unquantized.append(layer.name)
    wrapped = set(wrapped)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    input_fq = {}

    def unique(name):
        base, i = name, 1
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.add(name)
        return name

    def quantize_input(value):
        if isinstance(value, keras.KerasTensor) and any(value is t for t in new_inputs):
            if id(value) not in input_fq:
                input_fq[id(value)] = FakeQuant(freeze_steps, name=unique("input_fq"))(value)
            return input_fq[id(value)]
        return value

    def call(layer, *args, **kwargs):
        args = keras.tree.map_structure(quantize_input, args)
        kwargs = keras.tree.map_structure(quantize_input, kwargs)
        if layer.name in wrapped:
            out = QuantizedKernel(layer)(*args, **kwargs)
        else:
            out = layer(*args, **kwargs)
        if layer.name not in quantized:
            return out
        return keras.tree.map_structure(
            lambda t: FakeQuant(freeze_steps, name=unique(f"{layer.name}_fq"))(t)
            if keras.backend.is_float_dtype(t.dtype)
            else t,
            out,
        )

    new_inputs = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in model.inputs
    ]
    inputs = new_inputs if len(new_inputs) > 1 else new_inputs[0]
    qat = keras.models.clone_model(
        model, input_tensors=inputs, clone_function=lambda layer: layer, call_function=call
    )
    for bn in bns:
        bn.trainable = False
    info = {
        "quantized_kernels": len(wrapped),
        "activation_quantizers": sum(isinstance(x, FakeQuant) for x in qat.layers),
        "unquantized_kernels": sorted(unquantized),
        "frozen_batchnorms": len(bns),
        "freeze_steps": int(freeze_steps),
    }
    return qat, info


def is_quantized(model):
    """Whether ``model`` has fake-quant layers (a ``quantize_model`` copy or its checkpoint)."""
    return any(isinstance(layer, (FakeQuant, QuantizedKernel)) for layer in model.layers)


def strip_quantization(model):
    """The plain float model of a fake-quant model: the wrapped layers themselves (same names and
    variables), no ``FakeQuant``, BatchNorm trainable again. A model without fake-quant layers is
    returned as it is."""
    if not is_quantized(model):
        return model

    def clone(layer):
        return layer.layer if isinstance(layer, QuantizedKernel) else layer

    def call(layer, *args, **kwargs):
        if isinstance(layer, FakeQuant):
            return args[0]
        return layer(*args, **kwargs)

    plain = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in plain.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = True
    return plain
