"""The detail loss of STDC-Seg (Fan et al., CVPR 2021, arXiv:2104.13188), ``--heads=detail``.

The ``detail`` output of a network (``stdc``) is one channel of boundary logits at the network's
own stride; its target is the label map, from which :func:`detail_targets` computes binary
boundary ("detail") targets at the label's size:

1. the label map (class ids as numbers) convolved with the 3x3 Laplacian kernel
   ``[[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]`` at strides 1, 2 and 4 (zero padding of one
   pixel, as ``F.conv2d(..., padding=1)``), negative responses clamped to zero;
2. each map binarised (``> threshold``, 0.1) and brought back to the label's size by nearest
   neighbour (each value repeated ``stride`` times; equal to PyTorch's ``mode="nearest"`` when the
   label's size is a multiple of the stride, and the crops of training are multiples of 32);
3. the three maps fused by a 1x1 convolution (3 -> 1, no bias) and binarised again at the same
   threshold.

The fusion is "trainable" in the paper, but the binarisation after it passes no gradient, so its
weights keep their initial values: tfseg uses the STDC authors' fixed initial weights (0.6, 0.3,
0.1; their ``DetailAggregateLoss``), with which a pixel is detail when it is an edge at stride 1 or
2 (0.1 alone is not above the threshold). The model keeps the 3 weights of that convolution so its
parameter count is the reference's (``tfseg.models.stdc.DetailFusionWeights``).

The loss (:class:`DetailLoss`) upsamples the logits to the label's size (half-pixel bilinear) and
is ``dice_weight * Dice + bce_weight * BCE``: Dice of the sigmoid probabilities per image
(``1 - (2 sum(p t) + 1) / (sum(p) + sum(t) + 1)``, averaged over the batch) and binary cross-entropy
with logits averaged over all pixels. Both weights are 1.0 (the reference's ``dice_loss_coef``,
``bce_loss_coef``); the output's weight among the losses is ``--detail_weight`` (the reference's
``detail_loss_coef``, 1.0).

Ignored pixels (label 255): the targets are computed from the label map as it is, 255 being one
more label value, and every pixel counts in the loss, as in the reference and the STDC authors'
code: the edge of an unlabelled region (the ego vehicle, the padding of a crop) is an edge of the
image too. With the clamping above it is marked on the side of the larger value, i.e. inside the
unlabelled region.

Departures from the reference zoo (zh320, ``core/seg_trainer.py``, ``core/loss.py``), which
follow the STDC authors' code instead: the reference fuses the raw (unclamped, not yet binarised)
Laplacian responses with its model's ``detail_conv`` at PyTorch's random initialisation, and its
Dice takes the raw logits rather than their sigmoid; the logits are upsampled half-pixel, not with
``align_corners=True``.
"""

import keras
from keras import ops

from tfseg.layers import ResizeLike

LAPLACIAN = ((-1.0, -1.0, -1.0), (-1.0, 8.0, -1.0), (-1.0, -1.0, -1.0))
STRIDES = (1, 2, 4)
FUSE_WEIGHTS = (0.6, 0.3, 0.1)
THRESHOLD = 0.1


def _edges(x, stride, threshold):
    """Binarised, clamped Laplacian of ``x`` (N, H, W, 1) at ``stride``, repeated back to H x W."""
    kernel = ops.reshape(ops.convert_to_tensor(LAPLACIAN, "float32"), (3, 3, 1, 1))
    padded = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    edges = ops.conv(padded, kernel, strides=stride, padding="valid")
    edges = ops.cast(ops.relu(edges) > threshold, "float32")
    if stride == 1:
        return edges
    edges = ops.repeat(ops.repeat(edges, stride, axis=1), stride, axis=2)
    shape = ops.shape(x)
    return edges[:, : shape[1], : shape[2], :]


def detail_targets(labels, *, fuse_weights=FUSE_WEIGHTS, threshold=THRESHOLD):
    """Binary detail targets (N, H, W) float32 of a label map (N, H, W) or (N, H, W, 1) of class
    ids: Laplacian edges at strides 1, 2, 4 fused by ``fuse_weights`` (see the module docstring).
    ``keras.ops`` only: usable inside a loss."""
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 3:
        labels = labels[..., None]
    x = ops.cast(labels, "float32")
    fused = 0.0
    for stride, weight in zip(STRIDES, fuse_weights):
        fused = fused + float(weight) * _edges(x, stride, threshold)
    return ops.cast(fused > threshold, "float32")[..., 0]


def dice_loss(probs, targets, smooth=1.0):
    """``1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)`` per image, averaged."""
    n = ops.shape(probs)[0]
    p, t = ops.reshape(probs, (n, -1)), ops.reshape(targets, (n, -1))
    inter = ops.sum(p * t, axis=1)
    return ops.mean(1.0 - (2.0 * inter + smooth) / (ops.sum(p, 1) + ops.sum(t, 1) + smooth))


def bce_with_logits(logits, targets):
    """Mean binary cross-entropy of ``sigmoid(logits)`` against ``targets`` (numerically stable)."""
    per_pixel = ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
    return ops.mean(per_pixel)


@keras.saving.register_keras_serializable(package="tfseg")
class DetailLoss(keras.losses.Loss):
    """STDC's detail loss: ``y_true`` the label map (N, H, W) of class ids, ``y_pred`` the detail
    logits (N, h, w, 1) at their own stride; ``dice_weight * Dice + bce_weight * BCE`` against
    :func:`detail_targets` (module docstring)."""

    def __init__(
        self,
        dice_weight=1.0,
        bce_weight=1.0,
        smooth=1.0,
        threshold=THRESHOLD,
        fuse_weights=FUSE_WEIGHTS,
        name="detail",
        **kwargs,
    ):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        self.dice_weight = float(dice_weight)
        self.bce_weight = float(bce_weight)
        self.smooth = float(smooth)
        self.threshold = float(threshold)
        self.fuse_weights = tuple(float(w) for w in fuse_weights)
        if len(self.fuse_weights) != len(STRIDES):
            raise ValueError(f"fuse_weights needs {len(STRIDES)} values, got {fuse_weights}")
        self._resize = ResizeLike(name="detail_resize")

    def call(self, y_true, y_pred):
        targets = detail_targets(y_true, fuse_weights=self.fuse_weights, threshold=self.threshold)
        logits = self._resize([ops.cast(y_pred, "float32"), targets[..., None]])[..., 0]
        loss = 0.0
        if self.dice_weight:
            loss = loss + self.dice_weight * dice_loss(ops.sigmoid(logits), targets, self.smooth)
        if self.bce_weight:
            loss = loss + self.bce_weight * bce_with_logits(logits, targets)
        return loss

    def get_config(self):
        return {
            "name": self.name,
            "dice_weight": self.dice_weight,
            "bce_weight": self.bce_weight,
            "smooth": self.smooth,
            "threshold": self.threshold,
            "fuse_weights": list(self.fuse_weights),
        }
