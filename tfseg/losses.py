"""Segmentation losses over logits ``(B, H, W, C)`` and integer labels ``(B, H, W)``.

Every loss ignores pixels labelled ``ignore_label`` (they contribute neither to the sum nor to the
normaliser) and returns a scalar: the (weighted) mean over the valid (for OHEM: the kept) pixels of
the batch. With class weights the normaliser is the sum of the pixels' weights, as in PyTorch's
``CrossEntropyLoss(weight=..., ignore_index=...)``; a pixel's weight is the weight of its own label.

Registered losses (``LOSSES``; build with ``make_loss(name, ...)``):

- ``ce`` / ``weighted_ce``: :class:`SegmentationCrossEntropy`.
- ``ohem``: :class:`OhemCrossEntropy`, online hard example mining (RGPNet, section 4): keep the
  valid pixels whose predicted probability for their target is below ``threshold`` (paper: 0.6),
  but at least the ``min_kept`` (paper: 5000) hardest valid pixels of the batch; (weighted) mean
  CE over the kept pixels. The selection carries no gradient.

Label relaxation (RGPNet section 3.2, after Zhu et al. 2019), ``label_relaxation_kernel=k`` on any
of them (0 or 1 = off; otherwise odd k >= 3): a valid pixel is a *border* pixel when its k x k
window (centred, clipped at the image edge) holds more than one class; ignore pixels add no class.
Its target set ``N`` is the set of classes in the window (one-hot labels max-pooled with stride 1
and kernel k) and its loss is ``-log sum_{C in N} P(C)``. Every other valid pixel keeps the
ordinary CE (the same formula with ``N = {label}``). OHEM then ranks pixels by
``sum_{C in N} P(C)``.

``y_true`` is the label map ``(B, H, W)``; the multi-hot targets are built here, on the device.

``ResizedLabelLoss`` wraps any of them for outputs at a coarser stride (auxiliary heads): the label
map is resized by nearest neighbour to the output's size first.
"""

import keras
from keras import ops

from tfseg.registry import Registry

LOSSES = Registry("loss")

_NEG = -1e30  # "log 0" for classes outside a pixel's target set (finite: no NaN gradients)


def check_relaxation_kernel(kernel):
    """Validate ``label_relaxation_kernel``: returns it as an int (0 = off)."""
    try:
        k = int(kernel or 0)
    except (TypeError, ValueError):
        k = -1
    if k < 0 or (k > 1 and k % 2 == 0) or (kernel is not None and float(kernel or 0) != k):
        raise ValueError(
            f"label_relaxation_kernel must be 0 or 1 (off) or an odd integer >= 3, got {kernel!r}"
        )
    return 0 if k <= 1 else k


def _flat_labels(y_true, ignore_label):
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    valid = ops.not_equal(labels, ignore_label)
    safe = ops.where(valid, labels, ops.zeros_like(labels))
    return safe, ops.cast(valid, "float32")


def _window_or(bits, kernel):
    """Bitwise OR of ``bits`` ``(B, H, W)`` over each centred k x k window (zero outside)."""
    r = kernel // 2
    shape = ops.shape(bits)
    padded = ops.pad(bits, [[0, 0], [r, r], [r, r]])
    rows = None  # separable: OR over the k rows of the window, then over its k columns
    for dy in range(kernel):
        part = ops.slice(padded, (0, dy, 0), (shape[0], shape[1], shape[2] + 2 * r))
        rows = part if rows is None else ops.bitwise_or(rows, part)
    out = None
    for dx in range(kernel):
        part = ops.slice(rows, (0, 0, dx), (shape[0], shape[1], shape[2]))
        out = part if out is None else ops.bitwise_or(out, part)
    return out


def _relaxed_sets(labels, num_classes, kernel, ignore_label):
    """-> (bool multi-hot ``(B, H, W, C)``, bool border ``(B, H, W)``), nothing at ignore pixels.

    Up to 31 classes each pixel's window is a 31-bit class set: ``1 << label`` OR-ed over the
    window (k + k shifted int32 maps), then expanded once; ~3x cheaper on CPU than max-pooling the
    float one-hot (8x256x256x19: 50 against 145 ms), which is the fallback for more classes.
    """
    labels = ops.cast(labels, "int32")
    valid = ops.not_equal(labels, ignore_label)
    safe = ops.where(valid, labels, ops.zeros_like(labels))
    if num_classes <= 31:
        bits = ops.where(valid, ops.left_shift(ops.ones_like(safe), safe), ops.zeros_like(safe))
        if kernel:
            bits = ops.where(valid, _window_or(bits, kernel), ops.zeros_like(bits))
        classes = ops.arange(num_classes, dtype="int32")
        multi = ops.not_equal(
            ops.bitwise_and(ops.right_shift(bits[..., None], classes), 1), 0
        )
        border = ops.not_equal(ops.bitwise_and(bits, bits - 1), 0)
        return multi, border
    one_hot = ops.one_hot(safe, num_classes) * ops.cast(valid, "float32")[..., None]
    if kernel:
        one_hot = ops.max_pool(one_hot, kernel, strides=1, padding="same")
        one_hot = one_hot * ops.cast(valid, "float32")[..., None]
    return ops.greater(one_hot, 0.5), ops.greater(ops.sum(one_hot, axis=-1), 1.5)


def multi_hot_targets(labels, num_classes, kernel, ignore_label=255):
    """Relaxed targets of a label batch ``(B, H, W)`` -> float32 ``(B, H, W, C)`` of 0/1.

    Each valid pixel gets every class present in its ``kernel`` x ``kernel`` window; ignore pixels
    get none (all zero). ``kernel`` <= 1 gives the one-hot labels.
    """
    multi, _ = _relaxed_sets(labels, num_classes, check_relaxation_kernel(kernel), ignore_label)
    return ops.cast(multi, "float32")


def border_mask(labels, num_classes, kernel, ignore_label=255):
    """Boolean ``(B, H, W)``: valid pixels with more than one class in their k x k window."""
    return _relaxed_sets(labels, num_classes, check_relaxation_kernel(kernel), ignore_label)[1]


def pixel_losses(y_true, y_pred, *, ignore_label=255, label_relaxation_kernel=0):
    """Per-pixel losses, flattened: ``(nll, labels, valid)``, each of length ``B * H * W``.

    ``nll`` is the CE (or the relaxed loss at border pixels, see the module docstring), zero at
    ignore pixels; ``labels`` the pixel's own class (0 at ignore pixels); ``valid`` 0/1 float.
    """
    num_classes = ops.shape(y_pred)[-1]
    logits = ops.reshape(ops.cast(y_pred, "float32"), (-1, num_classes))
    kernel = check_relaxation_kernel(label_relaxation_kernel)
    if kernel:
        labels, valid = _flat_labels(y_true, ignore_label)
        targets, _ = _relaxed_sets(y_true, y_pred.shape[-1], kernel, ignore_label)
        targets = ops.reshape(targets, (-1, num_classes))
    else:
        labels, valid = _flat_labels(y_true, ignore_label)
        ce = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return ce * valid, labels, valid
    log_probs = ops.log_softmax(logits, axis=-1)
    nll = -ops.logsumexp(ops.where(targets, log_probs, _NEG), axis=-1)
    return ops.where(ops.greater(valid, 0.5), nll, ops.zeros_like(nll)), labels, valid


def _weights(labels, valid, class_weights):
    if class_weights is None:
        return valid
    return ops.take(ops.convert_to_tensor(class_weights, "float32"), labels) * valid


def cross_entropy(
    y_true, y_pred, *, ignore_label=255, class_weights=None, label_relaxation_kernel=0
):
    """Ignore-aware (optionally class-weighted, optionally label-relaxed) mean cross-entropy."""
    ce, labels, valid = pixel_losses(
        y_true, y_pred, ignore_label=ignore_label, label_relaxation_kernel=label_relaxation_kernel
    )
    w = _weights(labels, valid, class_weights)
    return ops.sum(ce * w) / ops.maximum(ops.sum(w), 1e-6)


def ohem_keep_mask(nll, valid, *, threshold=0.6, min_kept=5000):
    """Float 0/1 mask of the pixels OHEM keeps (no gradient).

    Kept: valid pixels whose target probability ``p = exp(-nll)`` is below ``threshold``, and in
    any case the ``min_kept`` valid pixels with the lowest ``p`` (ties at the cut are all kept; with
    fewer valid pixels than ``min_kept`` every valid pixel is kept).
    """
    p = ops.exp(-ops.stop_gradient(nll))
    is_valid = ops.greater(valid, 0.5)
    keep = ops.logical_and(is_valid, ops.less(p, threshold))
    min_kept = int(min_kept)
    if min_kept > 0:
        score = ops.where(is_valid, p, 2.0 * ops.ones_like(p))  # invalid pixels rank last
        # Padding with 2.0 makes top_k's k <= length for any batch size; when fewer than
        # ``min_kept`` pixels are valid the cut lands on the padding (2.0) and keeps them all.
        score = ops.concatenate([score, 2.0 * ops.ones((min_kept,), dtype=score.dtype)], axis=0)
        lowest, _ = ops.top_k(-score, min_kept, sorted=True)
        cut = -lowest[min_kept - 1]
        keep = ops.logical_or(keep, ops.logical_and(is_valid, ops.less_equal(p, cut)))
    return ops.stop_gradient(ops.cast(keep, "float32"))


def ohem_cross_entropy(
    y_true,
    y_pred,
    *,
    ignore_label=255,
    class_weights=None,
    threshold=0.6,
    min_kept=5000,
    label_relaxation_kernel=0,
):
    """OHEM cross-entropy: (weighted) mean CE over the hard pixels, see :func:`ohem_keep_mask`."""
    ce, labels, valid = pixel_losses(
        y_true, y_pred, ignore_label=ignore_label, label_relaxation_kernel=label_relaxation_kernel
    )
    keep = ohem_keep_mask(ce, valid, threshold=threshold, min_kept=min_kept)
    w = _weights(labels, valid, class_weights) * keep
    return ops.sum(ce * w) / ops.maximum(ops.sum(w), 1e-6)


class _SegmentationLoss(keras.losses.Loss):
    def __init__(self, ignore_label, class_weights, label_relaxation_kernel, name, kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        self.ignore_label = int(ignore_label)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.label_relaxation_kernel = check_relaxation_kernel(label_relaxation_kernel)

    def get_config(self):
        return {
            "name": self.name,
            "ignore_label": self.ignore_label,
            "class_weights": self.class_weights,
            "label_relaxation_kernel": self.label_relaxation_kernel,
        }


@keras.saving.register_keras_serializable(package="tfseg")
class SegmentationCrossEntropy(_SegmentationLoss):
    """Keras loss wrapper of :func:`cross_entropy` (``class_weights=None`` for plain CE)."""

    def __init__(
        self,
        ignore_label=255,
        class_weights=None,
        label_relaxation_kernel=0,
        name="cross_entropy",
        **kwargs,
    ):
        super().__init__(ignore_label, class_weights, label_relaxation_kernel, name, kwargs)

    def call(self, y_true, y_pred):
        return cross_entropy(
            y_true,
            y_pred,
            ignore_label=self.ignore_label,
            class_weights=self.class_weights,
            label_relaxation_kernel=self.label_relaxation_kernel,
        )


@keras.saving.register_keras_serializable(package="tfseg")
class OhemCrossEntropy(_SegmentationLoss):
    """Keras loss wrapper of :func:`ohem_cross_entropy`."""

    def __init__(
        self,
        ignore_label=255,
        class_weights=None,
        threshold=0.6,
        min_kept=5000,
        label_relaxation_kernel=0,
        name="ohem_cross_entropy",
        **kwargs,
    ):
        super().__init__(ignore_label, class_weights, label_relaxation_kernel, name, kwargs)
        if not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"OHEM threshold must be in (0, 1], got {threshold!r}")
        if int(min_kept) < 0 or float(min_kept) != int(min_kept):
            raise ValueError(f"OHEM min_kept must be an integer >= 0, got {min_kept!r}")
        self.threshold = float(threshold)
        self.min_kept = int(min_kept)

    def call(self, y_true, y_pred):
        return ohem_cross_entropy(
            y_true,
            y_pred,
            ignore_label=self.ignore_label,
            class_weights=self.class_weights,
            threshold=self.threshold,
            min_kept=self.min_kept,
            label_relaxation_kernel=self.label_relaxation_kernel,
        )

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "min_kept": self.min_kept}


def resize_labels_nearest(labels, size):
    """Label maps ``(B, H, W)`` -> ``(B, h, w)`` by nearest neighbour at pixel centres: output row
    ``i`` reads input row ``floor((i + 0.5) * H / h)`` (for ``h = H / s``: the centre of each s x s
    block), likewise for columns. ``size`` may hold tensors (unknown static shapes)."""
    in_h, in_w = ops.shape(labels)[1], ops.shape(labels)[2]
    rows = _centre_indices(in_h, size[0])
    cols = _centre_indices(in_w, size[1])
    return ops.take(ops.take(labels, rows, axis=1), cols, axis=2)


def _centre_indices(n_in, n_out):
    step = ops.cast(n_in, "float32") / ops.cast(n_out, "float32")
    centres = (ops.cast(ops.arange(n_out), "float32") + 0.5) * step
    return ops.minimum(ops.cast(ops.floor(centres), "int32"), ops.cast(n_in, "int32") - 1)


@keras.saving.register_keras_serializable(package="tfseg")
class ResizedLabelLoss(keras.losses.Loss):
    """``loss`` of an output at its own (coarser) size: the label map is resized to the output by
    :func:`resize_labels_nearest` first. The loss of auxiliary heads (``heads=("aux",)``).
    """

    def __init__(self, loss, name=None, **kwargs):
        kwargs.pop("reduction", None)
        if isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        super().__init__(name=name or f"resized_{loss.name}", reduction="sum", **kwargs)
        self.loss = loss

    def call(self, y_true, y_pred):
        labels = resize_labels_nearest(y_true, ops.shape(y_pred)[1:3])
        return self.loss.call(labels, y_pred)

    def get_config(self):
        return {"name": self.name, "loss": keras.saving.serialize_keras_object(self.loss)}


LOSSES.register("ce")(SegmentationCrossEntropy)
LOSSES.register("weighted_ce")(SegmentationCrossEntropy)
LOSSES.register("ohem")(OhemCrossEntropy)


def make_loss(name, *, ignore_label=255, class_weights=None, **kwargs):
    """Build a registered loss by name. ``weighted_ce`` requires ``class_weights``; ``ce`` drops
    them; ``ohem`` uses them when given. ``kwargs``: ``label_relaxation_kernel`` (every loss),
    ``threshold`` and ``min_kept`` (``ohem`` only)."""
    cls = LOSSES.get(name)
    if name == "weighted_ce" and class_weights is None:
        raise ValueError("loss 'weighted_ce' needs class weights (--class_weights=weights.json)")
    if name == "ce":
        class_weights = None
    extra = set(kwargs) - {"label_relaxation_kernel"} - (
        {"threshold", "min_kept"} if cls is OhemCrossEntropy else set()
    )
    if extra:
        raise ValueError(f"loss {name!r} takes no option(s) {', '.join(sorted(extra))}")
    return cls(ignore_label=ignore_label, class_weights=class_weights, **kwargs)


# --------------------------------------------------------------------------------------------------
# Knowledge distillation (tfseg.training.distill: --teacher_model, --kd_loss)
# --------------------------------------------------------------------------------------------------

KD_LOSSES = ("kl", "mse", "cwd")
KD_PIXELS = ("labelled", "all")  # --kd_pixels: where the distillation loss is averaged


def _split(y_pred):
    classes = y_pred.shape[-1] // 2
    return y_pred[..., :classes], y_pred[..., classes:]


def _labelled(y_true, ignore_label):
    """Float mask (N, H, W) of the labelled pixels."""
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == 4:
        y_true = y_true[..., 0]
    return ops.cast(ops.not_equal(ops.cast(y_true, "int32"), ignore_label), "float32")


def kl_distillation(student, teacher, mask, temperature):
    """``T^2`` x the mean over labelled pixels of ``KL(softmax(t/T) || softmax(s/T))``."""
    log_s = ops.log_softmax(student / temperature, axis=-1)
    log_t = ops.log_softmax(teacher / temperature, axis=-1)
    per_pixel = ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1)
    total = ops.sum(per_pixel * mask)
    return temperature**2 * total / ops.maximum(ops.sum(mask), 1.0)


def mse_distillation(student, teacher, mask):
    """Mean squared logit difference over labelled pixels and classes."""
    per_pixel = ops.mean(ops.square(student - teacher), axis=-1)
    return ops.sum(per_pixel * mask) / ops.maximum(ops.sum(mask), 1.0)


def cwd_distillation(student, teacher, mask, temperature):
    """Channel-wise distillation: per image and channel, KL between the teacher's and the student's
    spatial softmax over the labelled positions, times ``T^2``, averaged over images and
    channels (an image without labelled pixels counts zero)."""
    n, c = ops.shape(student)[0], student.shape[-1]
    s = ops.reshape(ops.transpose(student, (0, 3, 1, 2)), (n, c, -1)) / temperature
    t = ops.reshape(ops.transpose(teacher, (0, 3, 1, 2)), (n, c, -1)) / temperature
    m = ops.reshape(mask, (n, 1, -1))
    # unlabelled positions leave the distributions: a large negative logit, and their terms zeroed
    offset = (1.0 - m) * -1e4
    log_s = ops.log_softmax(s + offset, axis=-1)
    log_t = ops.log_softmax(t + offset, axis=-1)
    terms = ops.where(m > 0, ops.exp(log_t) * (log_t - log_s), 0.0)
    per_channel = ops.sum(terms, axis=-1)  # (n, c)
    has_labels = ops.cast(ops.sum(m, axis=(1, 2)) > 0, "float32")  # (n,)
    total = ops.sum(per_channel * has_labels[:, None])
    return temperature**2 * total / ops.cast(n * c, "float32")


@keras.saving.register_keras_serializable(package="tfseg")
class DistillationLoss(keras.losses.Loss):
    """The loss of the ``distill`` output (student and teacher logits concatenated; see the module
    docstring). ``y_true`` is the label map, used only for its ``ignore_label`` pixels: with
    ``pixels="labelled"`` (the default) the loss is averaged over the labelled pixels, with
    ``pixels="all"`` over every pixel, labelled or not (``--kd_pixels``)."""

    def __init__(self, kind="kl", temperature=4.0, ignore_label=255, name="distillation",
                 pixels="labelled", **kw):
        kw.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kw)
        if kind not in KD_LOSSES:
            raise ValueError(f"unknown --kd_loss {kind!r}; choose one of {', '.join(KD_LOSSES)}")
        if temperature <= 0:
            raise ValueError(f"--kd_temperature must be > 0, got {temperature}")
        if pixels not in KD_PIXELS:
            raise ValueError(
                f"unknown --kd_pixels {pixels!r}; choose one of {', '.join(KD_PIXELS)}")
        self.pixels = pixels
        self.kind = kind
        self.temperature = float(temperature)
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        student, teacher = _split(ops.cast(y_pred, "float32"))
        mask = _labelled(y_true, self.ignore_label)
        if self.pixels == "all":
            mask = ops.ones_like(mask)
        if self.kind == "kl":
            return kl_distillation(student, teacher, mask, self.temperature)
        if self.kind == "mse":
            return mse_distillation(student, teacher, mask)
        return cwd_distillation(student, teacher, mask, self.temperature)

    def get_config(self):
        return {
            "name": self.name,
            "kind": self.kind,
            "temperature": self.temperature,
            "ignore_label": self.ignore_label,
            "pixels": self.pixels,
        }
