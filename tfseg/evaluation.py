"""Evaluation at full resolution: streaming confusion matrix, multi-scale + flip, saved predictions.

TensorFlow-specific (it drives a tf.data pipeline and a ``tf.function``); the scores come from the
backend-neutral ``tfseg.metrics``.
"""

import os
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from tfseg.metrics import ConfusionMatrix, category_iou, scores_from_confusion
from tfseg.models import model_stride


def make_predict_fn(model):
    """``tf.function`` mapping an image batch to logits, traced once for any H/W."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def predict(images):
        return model(images, training=False)

    return predict


def predict_logits(predict, image, stride):
    """uint8 RGB (H, W, 3) -> logits (H, W, classes), padding to ``stride`` and cropping back.

    ``predict``: e.g. ``make_predict_fn(model)``; ``stride``: ``model_stride(model)``.
    """
    from tfseg.arrays import pad_to_stride
    from tfseg.data import normalize

    h, w = image.shape[:2]
    x = pad_to_stride(np.asarray(normalize(image.astype(np.float32))), stride)
    return np.asarray(predict(x[None].astype(np.float32)))[0, :h, :w]


def predict_image(predict, image, stride):
    """uint8 RGB (H, W, 3) -> train-id map (H, W) (``predict_logits``' argmax)."""
    return np.argmax(predict_logits(predict, image, stride), axis=-1).astype(np.uint8)


def _round_to(v, stride):
    return max(stride, int(round(v / stride)) * stride)


_TILE_OVERLAP = 1.0 / 3.0  # neighbouring tiles share a third of a tile (a 2/3 sliding stride)


def _tile_length(length, n, stride):
    """Tile size (a multiple of ``stride``) for ``n`` tiles overlapping by a third over
    ``length``."""
    if n == 1:
        return length
    t = length / (n - (n - 1) * _TILE_OVERLAP)
    return min(length, -(-int(np.ceil(t)) // stride) * stride)


def _starts(length, tile, n):
    if n == 1 or tile >= length:
        return [0]
    return sorted({round(i * (length - tile) / (n - 1)) for i in range(n)})


def _tile_plan(h, w, max_pixels, stride):
    """Fewest tiles (th, tw, row starts, column starts) of at most ``max_pixels`` covering
    (h, w)."""
    best = None
    for ny in range(1, 33):
        th = _tile_length(h, ny, stride)
        for nx in range(1, 33):
            tw = _tile_length(w, nx, stride)
            if th * tw <= max_pixels:
                if best is None or ny * nx < best[0] or (ny * nx == best[0] and th * tw < best[1]):
                    best = (ny * nx, th * tw, th, tw, ny, nx)
                break
    if best is None:
        raise ValueError(f"cannot tile {h}x{w} into tiles of at most {max_pixels} pixels")
    _, _, th, tw, ny, nx = best
    return th, tw, _starts(h, th, ny), _starts(w, tw, nx)


def _tiled_softmax(predict, x, plan):
    """Softmax of ``x`` predicted in overlapping tiles (``_tile_plan``), averaged where they
    overlap.

    Only one tile's activations are alive at a time; the sum lives in one host array of the scaled
    size, updated and normalised in place."""
    b, hs, ws = (int(d) for d in x.shape[:3])
    th, tw, rows, cols = plan
    canvas = None
    count = np.zeros((hs, ws), np.float32)
    for y0 in rows:
        for x0 in cols:
            p = tf.nn.softmax(predict(x[:, y0 : y0 + th, x0 : x0 + tw]), axis=-1).numpy()
            if canvas is None:
                canvas = np.zeros((b, hs, ws, p.shape[-1]), np.float32)
            canvas[:, y0 : y0 + th, x0 : x0 + tw] += p
            count[y0 : y0 + th, x0 : x0 + tw] += 1.0
            del p
    canvas /= count[None, :, :, None]
    return tf.convert_to_tensor(canvas)


def predict_probabilities(
    predict, image, *, stride=32, scales=(1.0,), flip=False, max_pixels=None
):
    """Softmax probabilities ``(B, H, W, C)`` of ``image`` averaged over scales (and flips).

    ``image`` has H, W divisible by ``stride``. Each scale resizes the image to the nearest multiple
    of ``stride``; each forward pass's softmax is resized back to (H, W) bilinearly (a flipped pass
    is mirrored back after that: the half-pixel bilinear resize commutes with the mirror) and added
    to one running sum, then divided by the number of passes. One scale of 1.0 without flip is
    exactly the single-scale softmax.

    Memory: one forward pass at a time; besides the model's activations only the running sum (at
    the input size, updated in place) and one pass's logits and probabilities (at its scale) are
    alive, so the cost does not grow with the number of scales, only with the largest one.
    ``max_pixels`` also bounds the forward pass: a scaled image with more pixels is predicted in
    the fewest overlapping tiles of at most ``max_pixels`` pixels (neighbours share a third of a
    tile; probabilities averaged where tiles overlap). Tiles see less context than the whole image,
    so results differ slightly; ``None`` (default) never tiles.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    h, w = int(image.shape[1]), int(image.shape[2])
    scales = [float(s) for s in scales]
    if not scales or min(scales) <= 0:
        raise ValueError(f"scales must be positive numbers, got {scales}")
    if max_pixels is not None and int(max_pixels) < stride * stride:
        raise ValueError(
            f"max_pixels must be at least stride**2 = {stride * stride}, got {max_pixels}"
        )
    total = None
    count = 0
    for s in scales:
        size = (h, w) if s == 1.0 else (_round_to(h * s, stride), _round_to(w * s, stride))
        scaled = image if size == (h, w) else tf.image.resize(image, size)
        tiled = max_pixels is not None and size[0] * size[1] > int(max_pixels)
        plan = _tile_plan(*size, int(max_pixels), stride) if tiled else None
        for flipped in (False, True) if flip else (False,):
            x = tf.reverse(scaled, axis=[2]) if flipped else scaled
            if plan is None:
                probs = tf.nn.softmax(predict(x), axis=-1)
            else:
                probs = _tiled_softmax(predict, x, plan)
            del x
            if size != (h, w):
                probs = tf.image.resize(probs, (h, w))
            if flipped:
                probs = tf.reverse(probs, axis=[2])
            if total is None:
                total = tf.Variable(probs)
            else:
                total.assign_add(probs)
            del probs
            count += 1
        del scaled
    if count == 1:
        return total.read_value()
    return total.read_value() / count


def evaluate_model(
    model,
    spec,
    split="val",
    *,
    scales=(1.0,),
    flip=False,
    max_images=None,
    save_predictions=None,
    scale=1.0,
    verbose=True,
    max_pixels=None,
):
    """Evaluate ``model`` on ``spec``'s ``split`` at full resolution.

    ``scale`` resizes every image (labels nearest) before evaluation, e.g. 0.5 to score Cityscapes
    at 512x1024. Returns a dict with ``miou``, ``per_class_iou`` (name -> IoU), ``pixel_accuracy``,
    ``mean_class_accuracy``, ``category_iou`` (Cityscapes-style datasets), ``num_images``,
    ``seconds`` and ``confusion_matrix``. ``max_pixels``: tile larger (scaled) images, see
    ``predict_probabilities``.
    """
    stride = model_stride(model)
    predict = make_predict_fn(model)

    def labels_of(image):
        if tuple(scales) == (1.0,) and not flip and max_pixels is None:
            return tf.argmax(predict(image), axis=-1, output_type=tf.int32).numpy()
        probs = predict_probabilities(
            predict, image, stride=stride, scales=scales, flip=flip, max_pixels=max_pixels
        )
        return tf.argmax(probs, axis=-1, output_type=tf.int32).numpy()

    cm, n, seconds = _score(labels_of, spec, split, stride=stride, scale=scale,
                            max_images=max_images, save_predictions=save_predictions,
                            verbose=verbose)  # fmt: skip
    return _result(cm, spec, split, n, seconds, scales, flip)


def _score(labels_of, spec, split, *, stride, scale, max_images, save_predictions, verbose):
    """``(confusion matrix, images, seconds)`` of ``labels_of`` (an image batch of
    ``make_eval_dataset`` -> int labels ``(B, H, W)``) over ``split``; ``save_predictions``
    writes each image's labels (``_PredictionWriter``)."""
    from tfseg.data import make_eval_dataset

    cm = ConfusionMatrix(spec.num_classes, spec.ignore_label)
    examples = spec.examples(split)
    ds = make_eval_dataset(spec, split, stride=stride, batch_size=1, scale=scale)
    if max_images:
        ds = ds.take(int(max_images))
    writer = _PredictionWriter(spec, save_predictions, scale) if save_predictions else None
    start = time.perf_counter()
    n = 0
    for image, label, index in ds:
        pred = labels_of(image)
        cm.update(label.numpy(), pred)
        if writer is not None:
            for b in range(pred.shape[0]):
                writer.write(examples[int(index[b])], pred[b])
        n += pred.shape[0]
        if verbose and n % 50 == 0:
            print(f"  evaluated {n} images", flush=True)
    return cm, n, time.perf_counter() - start


def _result(cm, spec, split, n, seconds, scales=(1.0,), flip=False):
    """The scores of ``evaluate_model`` / ``evaluate_artifact`` from their confusion matrix."""
    if n == 0:
        raise ValueError(f"split {split!r} of dataset {spec.name!r} has no images to evaluate")
    scores = scores_from_confusion(cm.matrix)
    result = {
        "miou": scores["miou"],
        "per_class_iou": {
            name: _float_or_none(v) for name, v in zip(spec.class_names, scores["per_class_iou"])
        },
        "pixel_accuracy": scores["pixel_accuracy"],
        "mean_class_accuracy": scores["mean_class_accuracy"],
        "num_images": n,
        "seconds": seconds,
        "scales": list(scales),
        "flip": bool(flip),
        "confusion_matrix": cm.matrix.tolist(),
    }
    categories = cityscapes_categories(spec)
    if categories:
        result["category_iou"] = {
            k: _float_or_none(v) for k, v in category_iou(cm.matrix, categories).items()
        }
    return result


def artifact_logits(artifact, x):
    """Logits ``(1, h, w, C)`` of an exported artifact (``export_lib.artifacts.open_artifact``)
    for one normalised image batch ``x`` ``(1, h, w, 3)``, as a deployed pipeline computes them.

    An artifact exported for a static input size (every ``--target=cpu`` export) sees the image
    resized bilinearly to that size, and its logits are resized bilinearly back to ``(h, w)``; a
    dynamic one sees the image padded to the model's stride (from its export report; 32 without
    one) and its logits are cropped back."""
    from tfseg.arrays import pad_to_stride

    x = np.asarray(x, np.float32)
    h, w = x.shape[1:3]
    size = artifact.input_size
    if size is None:
        logits = np.asarray(artifact.runner(pad_to_stride(x[0], int(artifact.stride or 32))[None]))
        logits = logits[:, :h, :w]
    else:
        resized = x if (h, w) == tuple(size) else tf.image.resize(x, size).numpy()
        logits = np.asarray(artifact.runner(resized))
        if logits.ndim == 4 and tuple(logits.shape[1:3]) != (h, w):
            logits = tf.image.resize(logits, (h, w)).numpy()
    if logits.ndim != 4 or tuple(logits.shape[1:3]) != (h, w):
        raise ValueError(f"{artifact.path}: expected NHWC logits, got shape {logits.shape}")
    return logits


def evaluate_artifact(
    artifact, spec, split="val", *, max_images=None, save_predictions=None, scale=1.0,
    verbose=True,
):  # fmt: skip
    """Evaluate an exported artifact (``export_lib.artifacts.open_artifact``) on ``spec``'s
    ``split``, single scale, as it runs when deployed (``artifact_logits``: resized to a static
    input size and back, or padded to the stride). Returns ``evaluate_model``'s dict plus
    ``artifact`` (path, format, precision, input size)."""
    def labels_of(image):
        logits = artifact_logits(artifact, image.numpy())
        if logits.shape[-1] != spec.num_classes:
            raise ValueError(
                f"artifact {artifact.path} predicts {logits.shape[-1]} classes but dataset "
                f"{spec.name!r} has {spec.num_classes}"
            )
        return np.argmax(logits, axis=-1).astype(np.int32)

    cm, n, seconds = _score(labels_of, spec, split, stride=1, scale=scale, max_images=max_images,
                            save_predictions=save_predictions, verbose=verbose)  # fmt: skip
    result = _result(cm, spec, split, n, seconds)
    size = artifact.input_size
    result["artifact"] = {"path": os.path.abspath(artifact.path), "format": artifact.format,
                          "precision": artifact.precision,
                          "input_size": list(size) if size else None}  # fmt: skip
    return result


def _float_or_none(v):
    return None if v is None or np.isnan(v) else float(v)


def cityscapes_categories(spec):
    """Category name -> train ids for datasets labelled with the Cityscapes 19 classes."""
    if spec.num_classes != 19 or spec.label_format != "labelIds":
        return None
    from cityscapesscripts.helpers.labels import labels

    cats = {}
    for lab in labels:
        if 0 <= lab.trainId < 19 and not lab.ignoreInEval:
            cats.setdefault(lab.category, set()).add(lab.trainId)
    return {k: sorted(v) for k, v in cats.items()}


def format_table(result, title="evaluation"):
    """A printable per-class IoU table with the summary scores."""
    lines = [f"{title}: {result['num_images']} images", f"{'class':<16}{'IoU':>8}"]
    lines.append("-" * 24)
    for name, v in result["per_class_iou"].items():
        lines.append(f"{name:<16}{'   n/a' if v is None else f'{100 * v:8.2f}'}")
    lines.append("-" * 24)
    lines.append(f"{'mIoU':<16}{100 * result['miou']:8.2f}")
    lines.append(f"{'pixel acc':<16}{100 * result['pixel_accuracy']:8.2f}")
    lines.append(f"{'mean class acc':<16}{100 * result['mean_class_accuracy']:8.2f}")
    for name, v in (result.get("category_iou") or {}).items():
        lines.append(f"{'cat ' + name:<16}{'   n/a' if v is None else f'{100 * v:8.2f}'}")
    return "\n".join(lines)


def colorize(pred, colors, ignore_label=255):
    """Label map (H, W) -> RGB uint8 image using ``colors`` (ignore pixels black)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: len(colors)] = np.asarray(colors, dtype=np.uint8)
    out = palette[np.clip(pred, 0, 255).astype(np.int64)]
    out[pred == ignore_label] = 0
    return out


class _PredictionWriter:
    """Writes predictions cropped to the original size.

    Cityscapes-format datasets: ``<city>_<seq>_<frame>_leftImg8bit.png`` holding official labelIds
    (what ``cityscapesscripts`` evaluates); other datasets: ``<id>.png`` holding train ids. Colour
    images go to ``color/``.
    """

    def __init__(self, spec, directory, scale=1.0):
        self.spec = spec
        self.scale = float(scale)
        self.dir = directory
        os.makedirs(os.path.join(directory, "color"), exist_ok=True)
        self.to_label_id = None
        if spec.label_format == "labelIds":
            from tfseg.data.labels import CITYSCAPES_TRAIN_ID_TO_LABEL_ID

            self.to_label_id = np.asarray(CITYSCAPES_TRAIN_ID_TO_LABEL_ID, dtype=np.uint8)

    def write(self, example, pred):
        with Image.open(example.image) as im:
            w, h = im.size
        # The eval pipeline resized by ``scale`` (rounded) and padded bottom/right: undo both.
        sh, sw = max(1, round(h * self.scale)), max(1, round(w * self.scale))
        pred = np.ascontiguousarray(pred[:sh, :sw]).astype(np.uint8)
        if (sh, sw) != (h, w):
            pred = np.asarray(Image.fromarray(pred).resize((w, h), Image.NEAREST))
        if self.to_label_id is not None:
            name = f"{example.id}_leftImg8bit.png"
            out = self.to_label_id[pred]
        else:
            name = f"{example.id}.png"
            out = pred.astype(np.uint8)
        Image.fromarray(out).save(os.path.join(self.dir, name))
        Image.fromarray(colorize(pred, self.spec.colors, self.spec.ignore_label)).save(
            os.path.join(self.dir, "color", name)
        )
