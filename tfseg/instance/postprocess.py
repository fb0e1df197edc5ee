"""Post-processing: predicted centres -> instance masks with a class and a confidence.

The paper's only post-processing is a threshold on the instance area. Concretely, for one image:

1. pixels whose semantic prediction is a thing class take part;
2. each pixel's predicted centre ``(y, x)`` is quantised to a bin of ``quantization`` input pixels
   (``floor(c / q + 0.5)``); pixels sharing a bin form one instance (after nearest upsampling the
   centres are copies of low-resolution values, so an instance is a set of nearly equal values);
3. instances smaller than ``min_area`` pixels are dropped (boundary fragments);
4. each instance gets the majority semantic class of its pixels (ties: the lower train id), or, with
   ``per_class=True``, pixels are grouped by (class, bin) so touching objects of different classes
   with close centres (a rider on a bicycle) stay apart;
5. confidence: the mean softmax probability of the instance's class over its pixels when
   ``probabilities`` are given, else the class purity (share of its pixels predicted as that class).

Instances are numbered 1..N by decreasing area in the returned id map (0 = no instance).
"""

import numpy as np

from tfseg.instance.targets import THING_TRAIN_IDS, train_id_to_label_id

_OFFSET = 1 << 20


def centres_to_instances(
    centres,
    semantic,
    *,
    probabilities=None,
    thing_train_ids=THING_TRAIN_IDS,
    quantization=4.0,
    min_area=50,
    per_class=False,
):
    """Instances of one image.

    Args:
      centres: float (H, W, 2), predicted instance centre ``(y, x)`` per pixel (input pixels).
      semantic: int (H, W), predicted train ids.
      probabilities: optional float (H, W, C) softmax probabilities (for the confidence).
      thing_train_ids: train ids of the thing classes.
      quantization: bin size of the centre quantisation, in pixels (> 0).
      min_area: instances with fewer pixels are dropped.
      per_class: group by (class, bin) instead of by bin only.

    Returns:
      ``(instance_map, instances)``: int32 (H, W) with ids 1..N (0 elsewhere) and a list of dicts
      ``{"id", "train_id", "label_id", "area", "confidence"}`` (label_id: Cityscapes labelId, or
      None for train ids outside the Cityscapes table).
    """
    centres = np.asarray(centres, dtype=np.float64)
    semantic = np.asarray(semantic)
    if centres.ndim != 3 or centres.shape[-1] != 2:
        raise ValueError(f"centres must be (H, W, 2), got shape {centres.shape}")
    if semantic.shape != centres.shape[:2]:
        raise ValueError(
            f"semantic map {semantic.shape} and centres {centres.shape[:2]} differ in size"
        )
    if probabilities is not None and np.shape(probabilities)[:2] != semantic.shape:
        raise ValueError(
            f"probabilities {np.shape(probabilities)} do not match the semantic map "
            f"{semantic.shape}"
        )
    if not quantization > 0:
        raise ValueError(f"quantization must be > 0, got {quantization}")
    instance_map = np.zeros(semantic.shape, np.int32)
    thing = np.isin(semantic, np.asarray(thing_train_ids))
    ys, xs = np.nonzero(thing)
    if ys.size == 0:
        return instance_map, []
    q = np.floor(centres[ys, xs] / float(quantization) + 0.5).astype(np.int64) + _OFFSET // 2
    q = np.clip(q, 0, _OFFSET - 1)
    key = q[:, 0] * _OFFSET + q[:, 1]
    cls = semantic[ys, xs].astype(np.int64)
    if per_class:
        key = key + cls * (_OFFSET * _OFFSET)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n = counts.size
    num_classes = int(cls.max()) + 1
    votes = np.bincount(inverse * num_classes + cls, minlength=n * num_classes).reshape(
        n, num_classes
    )
    majority = np.argmax(votes, axis=1)
    purity = votes[np.arange(n), majority] / counts
    if probabilities is not None:
        probs = np.asarray(probabilities)
        pix_prob = probs[ys, xs, majority[inverse]]
        confidence = np.bincount(inverse, weights=pix_prob, minlength=n) / counts
    else:
        confidence = purity
    keep = np.nonzero(counts >= int(min_area))[0]
    keep = keep[np.argsort(-counts[keep], kind="stable")]
    new_id = np.zeros(n, np.int32)
    new_id[keep] = np.arange(1, keep.size + 1, dtype=np.int32)
    instance_map[ys, xs] = new_id[inverse]
    instances = []
    for k in keep:
        train_id = int(majority[k])
        try:
            label_id = train_id_to_label_id(train_id)
        except ValueError:
            label_id = None
        instances.append(
            {
                "id": int(new_id[k]),
                "train_id": train_id,
                "label_id": label_id,
                "area": int(counts[k]),
                "confidence": float(confidence[k]),
            }
        )
    return instance_map, instances


def instance_colors(n, seed=7):
    """``n`` distinct-ish RGB colours for instance overlays (index 0 unused: background)."""
    rng = np.random.default_rng(seed)
    colors = rng.integers(40, 256, size=(max(n, 0) + 1, 3), dtype=np.uint8)
    colors[0] = 0
    return colors


def instance_overlay(image, instance_map, alpha=0.6):
    """uint8 RGB image with each instance painted in its own colour (and a dark outline)."""
    image = np.asarray(image, dtype=np.float32)
    ids = np.asarray(instance_map)
    colors = instance_colors(int(ids.max()) if ids.size else 0).astype(np.float32)
    out = image.copy()
    m = ids > 0
    out[m] = image[m] * (1 - alpha) + colors[ids[m]] * alpha
    edge = np.zeros_like(m)
    edge[:-1] |= ids[:-1] != ids[1:]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    out[edge & m] = 0
    return np.clip(out, 0, 255).astype(np.uint8)
