"""Cityscapes-style instance evaluation: AP (IoU 0.5:0.95:0.05) and AP50 per class and mean.

The matching and the precision/recall integration follow the official
``cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling`` (without the distance-based
variants), re-implemented over in-memory masks so that training can report AP without writing files:

- ground truth: instanceIds maps; instances are ids >= 1000 of the 8 evaluated thing classes with
  at least ``min_region_size`` (100) pixels; smaller instances and groups (ids < 1000) are ignored;
- a prediction (mask, labelId, confidence) is a true positive for the ground-truth instance of its
  class with IoU > threshold (the highest-scoring one if several; the others are false positives);
- an unmatched prediction is a false positive unless more than ``threshold`` of its pixels lie on
  void, groups or too-small instances;
- AP of a class at a threshold: area under the precision/recall curve of the confidence-ranked
  predictions (the official step-wise integration); 0 if the class has ground truth but no
  prediction, NaN if it has no ground truth. AP = mean over thresholds; mean AP = nanmean over
  classes and thresholds; AP50 likewise at 0.5.

``write_cityscapes_predictions`` writes the official result format (one ``<id>.txt`` per image with
``relative/mask.png labelId confidence`` lines) so the official script can score the same output.
"""

import os
import time

import numpy as np
from cityscapesscripts.helpers import labels as _cs
from PIL import Image

from tfseg.instance.postprocess import centres_to_instances
from tfseg.instance.targets import THING_LABEL_IDS, THING_NAMES

OVERLAPS = np.arange(0.5, 1.0, 0.05)  # the official array (same floats)
MIN_REGION_SIZE = 100
VOID_LABEL_IDS = tuple(lab.id for lab in _cs.labels if lab.ignoreInEval)


def match_image(gt_ids, predictions, *, label_ids=THING_LABEL_IDS):
    """Overlaps of one image's predictions with its ground truth.

    Args:
      gt_ids: int (H, W) instanceIds map.
      predictions: iterable of ``(mask bool (H, W), label_id, confidence)``.

    Returns ``{label_id: {"gt": [...], "pred": [...]}}``: ground-truth instances ``{"id",
    "pixels", "matches": [(intersection, pred_pixels, confidence)]}`` and predictions ``{"pixels",
    "confidence", "void", "overlaps": [(gt_id, gt_pixels, intersection)]}``.
    """
    gt_ids = np.asarray(gt_ids).astype(np.int64)
    void = np.isin(gt_ids, VOID_LABEL_IDS)
    result = {}
    gt_by_label = {}
    ids, counts = np.unique(gt_ids, return_counts=True)
    for i, c in zip(ids, counts):
        label = int(i) // 1000 if i >= 1000 else int(i)
        if label in label_ids:
            gt_by_label.setdefault(label, []).append(
                {"id": int(i), "pixels": int(c), "matches": []}
            )
    for label in label_ids:
        result[label] = {"gt": gt_by_label.get(label, []), "pred": []}
    for mask, label_id, confidence in predictions:
        label_id = int(label_id)
        if label_id not in result:
            continue
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != gt_ids.shape:
            raise ValueError(f"prediction mask {mask.shape} and ground truth {gt_ids.shape} differ")
        pixels = int(np.count_nonzero(mask))
        if not pixels:
            continue
        pred = {
            "pixels": pixels,
            "confidence": float(confidence),
            "void": int(np.count_nonzero(void & mask)),
            "overlaps": [],
        }
        hit_ids, hit_counts = np.unique(gt_ids[mask], return_counts=True)
        hits = dict(zip(hit_ids.tolist(), hit_counts.tolist()))
        for gt in result[label_id]["gt"]:
            inter = hits.get(gt["id"], 0)
            if inter:
                gt["matches"].append((inter, pixels, pred["confidence"]))
                pred["overlaps"].append((gt["id"], gt["pixels"], inter))
        result[label_id]["pred"].append(pred)
    return result


def _average_precision(y_true, y_score, hard_fns):
    """The official step-wise area under the precision/recall curve."""
    if y_true.size == 0:
        return 0.0
    order = np.argsort(y_score, kind="stable")
    scores, trues = y_score[order], y_true[order]
    cum = np.append(np.cumsum(trues), 0.0)  # cum[-1] == 0: "no example below the first threshold"
    _, first = np.unique(scores, return_index=True)
    n, n_true = scores.size, cum[-2]
    precision = np.ones(first.size + 1)
    recall = np.zeros(first.size + 1)
    for k, idx in enumerate(first):
        below = cum[idx - 1]
        tp = n_true - below
        fp = n - idx - tp
        fn = below + hard_fns
        precision[k] = tp / (tp + fp)
        recall[k] = tp / (tp + fn)
    prev = np.concatenate([[recall[0]], recall[:-1]])
    nxt = np.concatenate([recall[1:], [0.0]])
    return float(np.dot(precision, (prev - nxt) / 2.0))


def average_precisions(matches, *, label_ids=THING_LABEL_IDS, overlaps=OVERLAPS,
                       min_region_size=MIN_REGION_SIZE):
    """AP matrix (len(label_ids), len(overlaps)) over a list of ``match_image`` results."""
    ap = np.zeros((len(label_ids), len(overlaps)))
    for li, label in enumerate(label_ids):
        for oi, th in enumerate(overlaps):
            y_true, y_score = [], []
            hard_fns = 0
            have_gt = have_pred = False
            for image in matches:
                gts = [
                    g
                    for g in image[label]["gt"]
                    if g["id"] >= 1000 and g["pixels"] >= min_region_size
                ]
                preds = image[label]["pred"]
                have_gt |= bool(gts)
                have_pred |= bool(preds)
                for g in gts:
                    scores = [
                        conf for inter, pix, conf in g["matches"]
                        if inter / (g["pixels"] + pix - inter) > th
                    ]
                    if not scores:
                        hard_fns += 1
                        continue
                    scores.sort()
                    y_true += [1.0] + [0.0] * (len(scores) - 1)  # duplicates are false positives
                    y_score += [scores[-1]] + scores[:-1]
                for p in preds:
                    if any(
                        inter / (gp + p["pixels"] - inter) > th for _, gp, inter in p["overlaps"]
                    ):
                        continue
                    ignored = p["void"]
                    for gid, gp, inter in p["overlaps"]:
                        if gid < 1000:
                            ignored += inter
                        if gp < min_region_size:
                            ignored += inter
                    if ignored / p["pixels"] <= th:
                        y_true.append(0.0)
                        y_score.append(p["confidence"])
            if have_gt and have_pred:
                ap[li, oi] = _average_precision(np.asarray(y_true), np.asarray(y_score), hard_fns)
            elif have_gt:
                ap[li, oi] = 0.0
            else:
                ap[li, oi] = np.nan
    return ap


def summarize(ap, *, names=THING_NAMES, overlaps=OVERLAPS):
    """AP matrix -> ``{"ap", "ap50", "per_class": {name: {"ap", "ap50"}}}`` (NaN -> None)."""
    o50 = int(np.argmin(np.abs(np.asarray(overlaps) - 0.5)))

    def f(v):
        return None if v is None or np.isnan(v) else float(v)

    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_ap = np.nanmean(ap) if np.isfinite(ap).any() else np.nan
            mean_ap50 = np.nanmean(ap[:, o50]) if np.isfinite(ap[:, o50]).any() else np.nan
    return {
        "ap": f(mean_ap),
        "ap50": f(mean_ap50),
        "per_class": {
            name: {"ap": f(np.mean(ap[i])), "ap50": f(ap[i, o50])} for i, name in enumerate(names)
        },
    }


def format_ap_table(result, title="instance evaluation"):
    lines = [
        f"{title}: {result.get('num_images', '?')} images",
        f"{'class':<14}{'AP':>8}{'AP50':>8}",
    ]
    lines.append("-" * 30)

    def pct(v):
        return "     n/a" if v is None else f"{100 * v:8.2f}"

    for name, v in result["per_class"].items():
        lines.append(f"{name:<14}{pct(v['ap'])}{pct(v['ap50'])}")
    lines.append("-" * 30)
    lines.append(f"{'mean':<14}{pct(result['ap'])}{pct(result['ap50'])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the official file format
# --------------------------------------------------------------------------------------------------


def write_cityscapes_predictions(directory, image_id, instance_map, instances):
    """Write ``<dir>/<image_id>.txt`` and ``<dir>/masks/<image_id>_<k>.png`` (official format)."""
    os.makedirs(os.path.join(directory, "masks"), exist_ok=True)
    lines = []
    for inst in instances:
        if inst["label_id"] is None:
            continue
        rel = f"masks/{image_id}_{inst['id']:03d}.png"
        mask = (np.asarray(instance_map) == inst["id"]).astype(np.uint8) * 255
        Image.fromarray(mask).save(os.path.join(directory, rel))
        lines.append(f"{rel} {inst['label_id']} {inst['confidence']:.6f}\n")
    path = os.path.join(directory, f"{image_id}.txt")
    with open(path, "w") as f:
        f.writelines(lines)
    return path


def read_cityscapes_predictions(txt_path):
    """``[(mask, label_id, confidence)]`` from an official-format prediction file."""
    out = []
    base = os.path.dirname(os.path.abspath(txt_path))
    with open(txt_path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ValueError(
                    f"{txt_path}:{n}: expected 'mask.png labelId confidence', got {line!r}"
                )
            with Image.open(os.path.join(base, parts[0])) as im:
                mask = np.asarray(im.convert("L")) != 0
            out.append((mask, int(float(parts[1])), float(parts[2])))
    return out


def evaluate_files(prediction_txts, gt_instance_pngs):
    """AP over official-format prediction files and their instanceIds ground truth (same order)."""
    if len(prediction_txts) != len(gt_instance_pngs):
        raise ValueError(
            f"{len(prediction_txts)} prediction files but {len(gt_instance_pngs)} "
            "ground-truth files"
        )
    from tfseg.instance.data import read_instance_ids

    matches = [
        match_image(read_instance_ids(gt), read_cityscapes_predictions(txt))
        for txt, gt in zip(prediction_txts, gt_instance_pngs)
    ]
    ap = average_precisions(matches)
    result = summarize(ap)
    result["num_images"] = len(matches)
    result["ap_matrix"] = ap.tolist()
    return result


# --------------------------------------------------------------------------------------------------
# a model over a dataset split
# --------------------------------------------------------------------------------------------------


def make_instance_predict_fn(model):
    """``tf.function``: image batch -> (softmax probabilities, centres), traced once for any H/W."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def predict(images):
        logits, centres = model(images, training=False)
        return tf.nn.softmax(logits, axis=-1), centres

    return predict


def evaluate_instances(
    model,
    spec,
    split="val",
    *,
    max_images=None,
    quantization=4.0,
    min_area=50,
    per_class=False,
    save_predictions=None,
    verbose=True,
):
    """AP / AP50 of a two-output model on ``spec``'s ``split`` at full resolution.

    Returns ``{"ap", "ap50", "per_class", "num_images", "seconds", "ms_per_image",
    "postprocess_ms_per_image", "ap_matrix"}``. ``save_predictions=DIR`` writes the official
    result files there (see ``write_cityscapes_predictions``).
    """
    from tfseg.data import make_eval_dataset
    from tfseg.instance.data import instance_examples, read_instance_ids
    from tfseg.instance.model import require_instance_head
    from tfseg.models import model_stride

    require_instance_head(model)
    examples = instance_examples(spec, split)
    predict = make_instance_predict_fn(model)
    ds = make_eval_dataset(spec, split, stride=model_stride(model), batch_size=1)
    if max_images:
        ds = ds.take(int(max_images))
    matches = []
    net_s = post_s = 0.0
    start = time.perf_counter()
    for image, _, index in ds:
        ex = examples[int(index[0])]
        gt = read_instance_ids(ex.instance)
        h, w = gt.shape
        t0 = time.perf_counter()
        probs, centres = predict(image)
        probs, centres = probs.numpy()[0, :h, :w], centres.numpy()[0, :h, :w]
        t1 = time.perf_counter()
        semantic = np.argmax(probs, axis=-1)
        inst_map, instances = centres_to_instances(
            centres, semantic, probabilities=probs, quantization=quantization, min_area=min_area,
            per_class=per_class,
        )
        post_s += time.perf_counter() - t1
        net_s += t1 - t0
        preds = [
            (inst_map == inst["id"], inst["label_id"], inst["confidence"])
            for inst in instances
            if inst["label_id"] is not None
        ]
        matches.append(match_image(gt, preds))
        if save_predictions:
            write_cityscapes_predictions(save_predictions, ex.id, inst_map, instances)
        if verbose and len(matches) % 50 == 0:
            print(f"  evaluated {len(matches)} images", flush=True)
    if not matches:
        raise ValueError(f"split {split!r} of dataset {spec.name!r} has no images to evaluate")
    ap = average_precisions(matches)
    result = summarize(ap)
    n = len(matches)
    result.update(
        num_images=n,
        seconds=time.perf_counter() - start,
        ms_per_image=1000 * net_s / n,
        postprocess_ms_per_image=1000 * post_s / n,
        quantization=float(quantization),
        min_area=int(min_area),
        ap_matrix=ap.tolist(),
    )
    return result
