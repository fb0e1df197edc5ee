"""Per-pixel prediction entropy of two models and a heatmap of its difference (RGPNet, Figure 5).

    python experiments/entropy_diff.py --model_a=runs/pr_with_lr/model.keras \
        --model_b=runs/pr_without_lr/model.keras --input=IMAGE|DIR|GLOB --output=DIR \
        [--normalize] [--range=R] [--save_npy]

For every image writes ``<stem>_entropy_diff.png``: ``H_a - H_b`` per pixel, blue where model A is
more confident (lower entropy), red where it is less, white where they agree; the colour scale runs
over ``[-R, R]`` (``--range``; default the 99th percentile of ``|H_a - H_b|`` of that image), drawn
as a bar under the map. ``H = -sum_c p_c log p_c`` of the softmax (nats; ``--normalize`` divides by
``log C`` so models with different class counts compare). Also writes ``entropy_diff.json`` with,
per image, the mean entropies, the mean difference, and the mean difference on the boundary pixels
of model A's prediction (a 3x3 window holding more than one class) and off them.
"""

import os
import sys

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

FLAGS = flags.FLAGS

# Diverging map: blue (negative) -> white (0) -> red (positive), the end colours of "coolwarm".
_NEG = np.array([59, 76, 192], np.float64)
_POS = np.array([180, 4, 38], np.float64)
_MID = np.array([255, 255, 255], np.float64)


class EntropyDiffError(ValueError):
    """Bad models, images or options; the message names the culprit."""


def define_flags(fv=FLAGS):
    flags.DEFINE_string(
        "model_a", None, "First .keras model (e.g. trained with label relaxation).", flag_values=fv
    )
    flags.DEFINE_string("model_b", None, "Second .keras model.", flag_values=fv)
    flags.DEFINE_string(
        "input", None, "An image file, a folder of images, or a glob.", flag_values=fv
    )
    flags.DEFINE_string("output", None, "Output folder.", flag_values=fv)
    flags.DEFINE_bool(
        "normalize", False, "Divide entropies by log(num_classes) (range 0..1).", flag_values=fv
    )
    flags.DEFINE_float(
        "range", None, "Colour scale [-R, R] of the heatmap (default: per-image 99th percentile).",
        flag_values=fv,
    )
    flags.DEFINE_bool("save_npy", False, "Also write <stem>_entropy_{a,b}.npy.", flag_values=fv)
    flags.mark_flags_as_required(["model_a", "model_b", "input", "output"], flag_values=fv)


def entropy_map(predict, image, stride, normalize=False):
    """uint8 RGB (H, W, 3) -> float32 (H, W) entropy of the softmax, padding to ``stride``."""
    import tensorflow as tf

    from tfseg.data import normalize as normalize_image

    h, w = image.shape[:2]
    x = np.asarray(normalize_image(image.astype(np.float32)))
    x = np.pad(x, ((0, -h % stride), (0, -w % stride), (0, 0)))
    logits = predict(x[None].astype(np.float32))[:, :h, :w]
    logp = tf.nn.log_softmax(logits, axis=-1)
    ent = -tf.reduce_sum(tf.exp(logp) * logp, axis=-1)[0]
    num_classes = int(logits.shape[-1])
    ent = np.asarray(ent, np.float32)
    labels = np.asarray(tf.argmax(logits[0], axis=-1), np.int32)
    if normalize:
        ent = ent / np.float32(np.log(num_classes))
    return ent, labels


def boundary_mask(labels):
    """Pixels whose 3x3 neighbourhood (edge-replicated) holds more than one label."""
    p = np.pad(labels, 1, mode="edge")
    h, w = labels.shape
    mask = np.zeros((h, w), bool)
    for dy in range(3):
        for dx in range(3):
            mask |= p[dy : dy + h, dx : dx + w] != labels
    return mask


def heatmap(diff, value_range):
    """(H, W) float -> uint8 RGB image, with a colour bar (-R .. 0 .. +R) underneath."""
    r = float(value_range) if value_range and value_range > 0 else 1.0
    t = np.clip(diff / r, -1.0, 1.0)[..., None]
    rgb = np.where(t < 0, _MID + (-t) * (_NEG - _MID), _MID + t * (_POS - _MID))
    h, w = diff.shape
    bar_h = max(12, h // 20)
    ramp = np.linspace(-1.0, 1.0, w)[None, :, None]
    bar = np.where(ramp < 0, _MID + (-ramp) * (_NEG - _MID), _MID + ramp * (_POS - _MID))
    bar = np.repeat(bar, bar_h, axis=0)
    text = np.full((bar_h + 4, w, 3), 255.0)
    out = Image.fromarray(np.concatenate([rgb, bar, text]).round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    y = h + bar_h + 1
    draw.text((2, y), f"-{r:.3g}", fill=(0, 0, 0))
    draw.text((w // 2 - 3, y), "0", fill=(0, 0, 0))
    label = f"+{r:.3g}"
    draw.text((max(0, w - 7 * len(label) - 2), y), label, fill=(0, 0, 0))
    return out


def _load(path, what):
    from tfseg.models.saving import load_model

    try:
        return load_model(path)
    except FileNotFoundError:
        raise EntropyDiffError(f"{what} not found: {path}") from None
    except ValueError as e:
        raise EntropyDiffError(f"{what}: {e}") from None


def run(fv=FLAGS):
    """The program. Returns the summary dict (also written as ``<output>/entropy_diff.json``)."""
    from tfseg.evaluation import make_predict_fn
    from tfseg.files import write_json_atomic
    from tfseg.models import model_stride
    from tfseg.predict import find_inputs

    if fv.range is not None and not fv.range > 0:
        raise EntropyDiffError(f"--range must be > 0, got {fv.range}")
    if os.path.exists(fv.output) and not os.path.isdir(fv.output):
        raise EntropyDiffError(f"--output {fv.output} exists and is not a folder")
    files = find_inputs(fv.input)
    model_a, model_b = _load(fv.model_a, "--model_a"), _load(fv.model_b, "--model_b")
    ca, cb = int(model_a.outputs[0].shape[-1]), int(model_b.outputs[0].shape[-1])
    if ca != cb and not fv.normalize:
        raise EntropyDiffError(
            f"--model_a predicts {ca} classes and --model_b {cb}: their entropies have different "
            "ranges; pass --normalize to compare them"
        )
    pa, pb = make_predict_fn(model_a), make_predict_fn(model_b)
    sa, sb = model_stride(model_a), model_stride(model_b)
    os.makedirs(fv.output, exist_ok=True)
    summary = {"model_a": fv.model_a, "model_b": fv.model_b, "normalized": bool(fv.normalize),
               "images": []}
    for path in files:
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except OSError as e:
            raise EntropyDiffError(f"cannot read image {path}: {e}") from None
        ha, labels_a = entropy_map(pa, image, sa, fv.normalize)
        hb, _ = entropy_map(pb, image, sb, fv.normalize)
        diff = ha - hb
        r = fv.range or float(np.percentile(np.abs(diff), 99)) or 1e-6
        stem = os.path.splitext(os.path.basename(path))[0]
        out_png = os.path.join(fv.output, f"{stem}_entropy_diff.png")
        heatmap(diff, r).save(out_png)
        if fv.save_npy:
            np.save(os.path.join(fv.output, f"{stem}_entropy_a.npy"), ha)
            np.save(os.path.join(fv.output, f"{stem}_entropy_b.npy"), hb)
        edge = boundary_mask(labels_a)
        row = {
            "image": path,
            "heatmap": out_png,
            "range": r,
            "mean_entropy_a": float(ha.mean()),
            "mean_entropy_b": float(hb.mean()),
            "mean_diff": float(diff.mean()),
            "boundary_fraction": float(edge.mean()),
            "mean_diff_boundary": float(diff[edge].mean()) if edge.any() else None,
            "mean_diff_interior": float(diff[~edge].mean()) if (~edge).any() else None,
        }
        summary["images"].append(row)
        on_edge = row["mean_diff_boundary"]
        edge_text = "n/a" if on_edge is None else f"{on_edge:+.4f}"
        print(
            f"{path}: H_a {row['mean_entropy_a']:.4f}, H_b {row['mean_entropy_b']:.4f}, "
            f"diff {row['mean_diff']:+.4f} (boundary pixels {edge_text}) -> {out_png}"
        )
    write_json_atomic(os.path.join(fv.output, "entropy_diff.json"), summary)
    return summary


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        run(FLAGS)
    except (EntropyDiffError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
