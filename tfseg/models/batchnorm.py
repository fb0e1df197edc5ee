"""BatchNorm statistics measured on data: ``recalibrate_batchnorm(model, batches)``.

A freshly built network keeps BatchNorm's initial statistics (mean 0, variance 1). In inference
mode every BN is then the identity, and the activations of a random-weight network shrink layer
after layer: Keras' default (Glorot) initialiser of a ``DepthwiseConv2D`` counts the channels
into its fan-in, so each 3x3 depthwise layer of a MobileNetV2 bottleneck scales its output down by
~10 (at 384 channels). Fast-SCNN's random-weight activations end near 1e-8 by its fusion module,
where a trained network's are of order 1, so an int8 export calibrated on it is not the export of
any trained network: LiteRT's XNNPACK refuses an ADD whose input scale is below 1/1024 of its
output's, and such a graph runs partly outside XNNPACK (Fast-SCNN 3 delegate partitions instead
of 2, measured in docs/results.md). Training sets the statistics; for a network that will only be
timed, ``recalibrate_batchnorm`` sets each BN's moving mean and variance to the mean of its
per-batch statistics on ``batches`` (forward passes in training mode), so that in inference mode
every BN normalises as a trained network's does. ``tfseg.benchmark`` (when it times an int8
runtime) and ``experiments/reference_compare.py`` apply it to the networks they build (not to a
model file).

Backend-neutral: the statistics come from the layers' own training-mode update (``momentum`` set
to ``k / (k + 1)`` for the k-th batch, restored afterwards). A BN with ``trainable=False`` (a
frozen, pretrained encoder's) keeps its statistics, as in training. Pass several images per
batch: after a global pooling a batch of one image has one value per channel, a variance of 0,
and such a BN would scale its input by ``1 / sqrt(epsilon)`` afterwards.
"""

import keras


def batchnorm_layers(model):
    """Every ``BatchNormalization`` in ``model``, nested models and layers included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def recalibrate_batchnorm(model, batches):
    """Set the moving statistics of ``model``'s trainable BatchNorm layers to the average of their
    batch statistics over ``batches`` (an iterable of input arrays, NHWC), in order; the rest of
    the model is unchanged. Returns the number of BN layers set.

    Raises ``ValueError`` when ``batches`` is empty or a batch's shape does not fit the model.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("recalibrate_batchnorm needs at least one batch")
    expected = tuple(model.inputs[0].shape[1:])
    for k, batch in enumerate(batches):
        got = tuple(getattr(batch, "shape", ()))
        if len(got) != len(expected) + 1 or any(
            e is not None and e != g for e, g in zip(expected, got[1:])
        ):
            raise ValueError(
                f"batch {k} has shape {got}; the model takes "
                f"(batch, {', '.join('any' if e is None else str(e) for e in expected)})"
            )
    layers = [layer for layer in batchnorm_layers(model) if layer.trainable]
    saved = [(layer, layer.momentum) for layer in layers]
    forward = _training_forward(model)
    try:
        for k, batch in enumerate(batches):
            for layer in layers:
                layer.momentum = k / (k + 1)
            forward(batch)
    finally:
        for layer, momentum in saved:
            layer.momentum = momentum
    return len(layers)


def _training_forward(model):
    """``model(x, training=True)``; on TensorFlow as a graph (``tf.function``), whose executor
    frees each intermediate once its consumers are done: called eagerly, a Keras functional model
    holds every intermediate to the end (SegNet, a batch of 4 at 512x1024: 16.8 GB resident
    against 3.2 GB). The momentum is read at trace time, so the function is traced per batch."""
    if keras.backend.backend() != "tensorflow":
        return lambda x: model(x, training=True)
    import tensorflow as tf

    return lambda x: tf.function(lambda v: model(v, training=True))(x)
