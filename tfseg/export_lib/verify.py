"""Compare an artifact with the Keras model on dataset images; the pass/fail thresholds.

Figures (over ``N`` images, on the pixels of the images, padding excluded):

- ``max_abs_logit_diff`` / ``mean_abs_logit_diff``: artifact logits minus Keras logits;
  ``max_rel_logit_diff`` divides by the largest Keras logit magnitude (so the fp32 test does not
  depend on how confident a model is);
- ``argmax_agreement``: fraction of pixels whose label (argmax) is the same;
- ``miou_keras`` / ``miou_artifact`` against the dataset's labels and ``miou_diff`` (artifact minus
  Keras, negative = the artifact is worse);
- SavedModel only: ``uint8_signature_agreement``, labels of the ``serving_uint8`` signature fed the
  raw uint8 images vs the Keras labels;
- ``--task=instance`` models, on the ``instance`` output (each pixel's instance centre, input
  pixels): ``max_abs_centre_diff`` / ``mean_abs_centre_diff`` in pixels, and ``centre_agreement``,
  the fraction of pixels whose centre is within ``CENTRE_TOLERANCE`` (1 px, in y and in x) of the
  Keras one: below the post-processing's quantisation step (4 px by default), so such pixels fall in
  the same instance.

Thresholds (``THRESHOLDS``): fp32 must agree on >= 99.9 % of the pixels with logits within 1e-3
(relative). fp16 and int8 come from measurements: the SkipNet-MobileNet quickstart model (4 epochs
on the synthetic set, val mIoU 27.1 %), exported at 512x1024 and verified on 20 val images, int8
calibrated on 50 train images:

- fp16: 99.82 % agreement, max relative logit difference 5.7e-3, mIoU 22.68 -> 22.69;
  thresholds: >= 99 %, <= 2e-2, mIoU drop <= 0.5 points;
- int8: 95.46 % agreement, max relative logit difference 1.2e-1 (the int8 logits come in steps of
  1/255 of their range, so close runners-up swap), mIoU 22.68 -> 22.67; thresholds: >= 90 %, no
  logit bound, mIoU drop <= 1 point.

bf16 (OpenVINO, session 30) was measured on the DABNet quickstart model (9 epochs, val mIoU
67.0 %), exported at 512x1024 and verified on 20 val images, AMD EPYC Zen 4 (AVX-512 BF16):
99.73 % agreement, max relative logit difference 8.5e-3, mIoU 47.01 -> 47.00 (the same model's
fp16 LiteRT: 99.985 % and 4.4e-4, since x86 LiteRT computes fp16 files in fp32; OpenVINO fp32:
100 %, 1.1e-6; int8: 98.87 %, 0.11). A second model, SkipNet-MobileNet trained with
configs/quickstart_skipnet.cfg (val mIoU 60.4), at 256x512, 20 val images: 99.84 %, 1.4e-2,
mIoU 60.88 -> 60.87 (int8: 99.26 %, 0.30). Thresholds: >= 98.5 %, <= 3e-2, mIoU drop <= 0.5 points.

(A weakly trained model, val mIoU 2.7 %, gave 99.51 % / 81.4 % agreement with unchanged mIoU: with
flat logits int8 agreement drops first, which is why the mIoU drop is the second criterion.)

Instance centres (``min_centre_agreement``), measured on the SSN model of the Table 6 analog
(``docs/instance.md``; t = 30, val mIoU 36.4 %, 30 val images at 128x256): fp32 LiteRT, ONNX and
SavedModel 100 % within 1 px (max difference 0.0006 px); fp16 99.985 % (a few pixels' nearest
upsampling picks a neighbouring instance). Thresholds 99.9 % (fp32) and 99 % (fp16). int8 held
0.85 %, so ``run_export`` refuses int8 LiteRT for instance models before converting.
Re-measure on a trained Cityscapes model and tighten.
"""

import numpy as np

CENTRE_TOLERANCE = 1.0  # pixels, in y and in x

# min_argmax_agreement: fraction of pixels; max_rel_logit_diff: max |diff| / max |keras logit|;
# max_miou_drop: mIoU(keras) - mIoU(artifact), absolute (0.01 = 1 point).
THRESHOLDS = {
    "fp32": {"min_argmax_agreement": 0.999, "max_rel_logit_diff": 1e-3, "max_miou_drop": 0.002,
             "min_centre_agreement": 0.999},
    "fp16": {"min_argmax_agreement": 0.99, "max_rel_logit_diff": 0.02, "max_miou_drop": 0.005,
             "min_centre_agreement": 0.99},
    "bf16": {"min_argmax_agreement": 0.985, "max_rel_logit_diff": 0.03, "max_miou_drop": 0.005,
             "min_centre_agreement": 0.99},
    "int8": {"min_argmax_agreement": 0.90, "max_rel_logit_diff": None, "max_miou_drop": 0.01,
             "min_centre_agreement": 0.99},
}


def _miou(confusion):
    from tfseg.metrics import scores_from_confusion

    miou = scores_from_confusion(confusion)["miou"]
    return None if np.isnan(miou) else float(miou)


def _outputs(y):
    """A runner's result as ``{name: float32 array}`` (a bare array is the logits)."""
    if isinstance(y, dict):
        return {k: np.asarray(v, np.float32) for k, v in y.items()}
    return {"logits": np.asarray(y, np.float32)}


def compare(reference, artifact, samples, *, num_classes, ignore_label=255, precision="fp32",
            uint8_fn=None):  # fmt: skip
    """Run ``reference`` (Keras) and ``artifact`` (callables: float32 NHWC -> logits, or ->
    ``{"logits": ..., "instance": ...}``) on ``samples`` (from ``samples.samples``) and return the
    figures with ``passed`` and ``failures``. The instance figures are computed when the reference
    returns an ``instance`` output; the artifact must then return one too.

    ``uint8_fn`` (optional) maps a uint8 ``(1, h, w, 3)`` image to labels ``(1, h, w)``.
    """
    from tfseg.metrics import ConfusionMatrix

    cm_ref = ConfusionMatrix(num_classes, ignore_label)
    cm_art = ConfusionMatrix(num_classes, ignore_label)
    max_abs = max_ref = 0.0
    sum_abs = 0.0
    n_values = agree = pixels = 0
    u8_agree = u8_pixels = 0
    centre = None
    n = 0
    for s in samples:
        x, label = s["image"], s["label"]
        h, w = s["valid"]
        ref_out, art_out = _outputs(reference(x)), _outputs(artifact(x))
        ref, art = ref_out["logits"][0, :h, :w], art_out["logits"]
        if art.shape[1:3] != x.shape[1:3] or art.shape[-1] != ref.shape[-1]:
            raise ValueError(f"artifact output shape {art.shape} does not fit input {x.shape}")
        art = art[0, :h, :w]
        if "instance" in ref_out:
            if "instance" not in art_out:
                raise ValueError("the artifact has no 'instance' output but the Keras model has")
            centre = _update_centres(centre, ref_out["instance"], art_out["instance"], h, w)
        diff = np.abs(art - ref)
        max_abs = max(max_abs, float(diff.max()))
        max_ref = max(max_ref, float(np.abs(ref).max()))
        sum_abs += float(diff.sum())
        n_values += diff.size
        p_ref, p_art = ref.argmax(-1), art.argmax(-1)
        agree += int((p_ref == p_art).sum())
        pixels += p_ref.size
        cm_ref.update(label[:h, :w], p_ref)
        cm_art.update(label[:h, :w], p_art)
        if uint8_fn is not None:
            labels = np.asarray(uint8_fn(s["uint8"][None]))[0]
            u8_agree += int((labels[:h, :w] == p_ref).sum())
            u8_pixels += p_ref.size
        n += 1
    if n == 0:
        raise ValueError("no images to verify on")
    miou_ref, miou_art = _miou(cm_ref.matrix), _miou(cm_art.matrix)
    result = {
        "num_images": n,
        "pixels": pixels,
        "max_abs_logit_diff": max_abs,
        "mean_abs_logit_diff": sum_abs / max(n_values, 1),
        "max_abs_keras_logit": max_ref,
        "max_rel_logit_diff": max_abs / max(max_ref, 1e-12),
        "argmax_agreement": agree / pixels,
        "miou_keras": miou_ref,
        "miou_artifact": miou_art,
        "miou_diff": None if miou_ref is None or miou_art is None else miou_art - miou_ref,
    }
    if uint8_fn is not None:
        result["uint8_signature_agreement"] = u8_agree / max(u8_pixels, 1)
    if centre is not None:
        result.update(
            max_abs_centre_diff=centre["max"],
            mean_abs_centre_diff=centre["sum"] / max(centre["values"], 1),
            centre_agreement=centre["agree"] / max(centre["pixels"], 1),
            centre_tolerance=CENTRE_TOLERANCE,
        )
    return judge(result, precision)


def _update_centres(acc, ref, art, h, w):
    if art.shape != ref.shape:
        raise ValueError(f"artifact instance output shape {art.shape} != Keras {ref.shape}")
    diff = np.abs(art[0, :h, :w] - ref[0, :h, :w])
    acc = acc or {"max": 0.0, "sum": 0.0, "values": 0, "agree": 0, "pixels": 0}
    acc["max"] = max(acc["max"], float(diff.max()))
    acc["sum"] += float(diff.sum())
    acc["values"] += diff.size
    acc["agree"] += int((diff.max(-1) <= CENTRE_TOLERANCE).sum())
    acc["pixels"] += h * w
    return acc


def judge(result, precision):
    """Add ``thresholds``, ``failures`` (list of messages) and ``passed`` to ``result``."""
    t = THRESHOLDS[precision]
    failures = []
    if result["argmax_agreement"] < t["min_argmax_agreement"]:
        failures.append(
            f"argmax agreement {100 * result['argmax_agreement']:.3f}% < "
            f"{100 * t['min_argmax_agreement']:.1f}%"
        )
    if (
        t["max_rel_logit_diff"] is not None
        and result["max_rel_logit_diff"] > t["max_rel_logit_diff"]
    ):
        failures.append(
            f"max relative logit difference {result['max_rel_logit_diff']:.2e} > "
            f"{t['max_rel_logit_diff']:.0e}"
        )
    if result["miou_diff"] is not None and -result["miou_diff"] > t["max_miou_drop"]:
        failures.append(
            f"mIoU drop {100 * -result['miou_diff']:.2f} points > {100 * t['max_miou_drop']:.1f}"
        )
    agreement = result.get("centre_agreement")
    if agreement is not None and agreement < t["min_centre_agreement"]:
        failures.append(
            f"instance centres agree (within {CENTRE_TOLERANCE:g} px) on only "
            f"{100 * agreement:.3f}% of the pixels < {100 * t['min_centre_agreement']:.1f}%"
        )
    u8 = result.get("uint8_signature_agreement")
    if u8 is not None and u8 < THRESHOLDS["fp32"]["min_argmax_agreement"]:
        failures.append(f"serving_uint8 labels agree on only {100 * u8:.3f}% of the pixels")
    return {**result, "thresholds": dict(t), "failures": failures, "passed": not failures}
