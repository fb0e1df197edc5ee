"""tf.data input pipelines: training (augmented crops) and evaluation (full resolution).

Per element: read the files -> decode (image: PNG/JPEG/BMP/GIF by content, 3 channels; label: see
below) -> checks -> label LUT (raw value -> train id, 256 entries, ``tf.gather``) -> augmentation
-> normalisation -> batch -> prefetch. The checks (file type, truncated PNG, image/label size,
label values in the dataset's table) stop the iteration with an error that names the file; other
corruption, e.g. a damaged JPEG, fails in TensorFlow's decoder without the name:
``check_examples`` (``python -m tfseg.data.check``) finds those.

Labels: when the first label file of the split is a grey PNG (mode "L") labels are decoded with
``tf.io.decode_png`` (a file that turns out to have several channels is re-read with PIL); when it
is a palette PNG (mode "P", e.g. Mapillary) or a 1-bit mask, all labels of the split are read with
PIL (``tf.numpy_function``) so that the palette *indices* are the ids. Colour-coded RGB labels are
rejected with an error naming the file (see ``tfseg.data.files``).

Training augmentation, in one ``tf.image.crop_and_resize`` per tensor (cost proportional to the
crop, not to the image): a random scale ``s`` in ``scale_range`` (image bilinear, label nearest,
both sampled on the same grid so they stay aligned), a random ``crop_size`` window of the scaled
image (where the scaled image is smaller than the crop, the window runs past its bottom/right edge:
those pixels are padding, label = ignore, image = 0 *after* normalisation, i.e. the mean colour, as
in evaluation), a horizontal flip (the sampling grid reversed: exact), then on the image only
brightness, contrast, saturation and hue jitter.

Determinism: the file order comes from ``Dataset.shuffle(seed=seed, reshuffle_each_iteration=True)``
and each element's augmentation from stateless random ops seeded by an element seed drawn from
``Dataset.random(seed=seed, rerandomize_each_iteration=True)``. Two datasets built with the same
``seed`` (and the same TensorFlow global seed, if one is set) yield identical batches; iterating one
dataset again (``.repeat()``) gives a new, also deterministic, order and new augmentations.
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from tfseg.data.core import DataError
from tfseg.data.files import check_label_mode, label_mode, read_label

AUTOTUNE = tf.data.AUTOTUNE
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # ImageNet RGB mean (0..1 scale)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MEAN.setflags(write=False)
STD.setflags(write=False)

_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"GIF8")
_PNG_END = b"IEND\xaeB`\x82"  # the last 8 bytes of every complete PNG file


def normalize(image):
    """uint8 or float RGB in 0..255 -> float32 ``(x / 255 - MEAN) / STD``; numpy in, numpy out."""
    if tf.is_tensor(image):
        return (tf.cast(image, tf.float32) / 255.0 - MEAN) / STD
    return ((np.asarray(image, dtype=np.float32) / 255.0 - MEAN) / STD).astype(np.float32)


def denormalize(image):
    """Inverse of ``normalize``: float32 RGB in 0..255 (not rounded or clipped)."""
    if tf.is_tensor(image):
        return (tf.cast(image, tf.float32) * STD + MEAN) * 255.0
    return ((np.asarray(image, dtype=np.float32) * STD + MEAN) * 255.0).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# decoding and checks
# --------------------------------------------------------------------------------------------------


def _assert(ok, *message):
    """An assertion op whose message is the concatenation of ``message`` (strings / tensors)."""
    return tf.debugging.Assert(ok, [tf.strings.join(list(message))])


def _complete_png(data):
    """False for a PNG file cut short (its IEND chunk missing); True for anything else."""
    is_png = tf.equal(tf.strings.substr(data, 0, 4), _MAGIC[0])
    tail = tf.strings.substr(data, tf.maximum(tf.strings.length(data) - 8, 0), 8)
    return tf.logical_or(tf.logical_not(is_png), tf.equal(tail, _PNG_END))


def _decode_image(path):
    data = tf.io.read_file(path)
    ok = tf.reduce_any([tf.equal(tf.strings.substr(data, 0, len(m)), m) for m in _MAGIC])
    checks = [
        _assert(ok, "image ", path, " is empty or not a PNG/JPEG/BMP/GIF file"),
        _assert(_complete_png(data), "image ", path, " is a truncated PNG file"),
    ]
    with tf.control_dependencies(checks):
        data = tf.identity(data)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _decode_label_tf(path):
    data = tf.io.read_file(path)
    ok = tf.equal(tf.strings.substr(data, 0, 4), _MAGIC[0])
    checks = [
        _assert(ok, "label ", path, " is empty or not a PNG file"),
        _assert(_complete_png(data), "label ", path, " is a truncated PNG file"),
    ]
    with tf.control_dependencies(checks):
        data = tf.identity(data)
    label = tf.io.decode_png(data, channels=0, dtype=tf.uint8)
    # A palette PNG decodes to colours: read it again with PIL to get its indices (the ids); PIL
    # rejects colour-coded labels with an error naming the file.
    return tf.cond(
        tf.equal(tf.shape(label)[2], 1), lambda: label[:, :, 0], lambda: _decode_label_pil(path)
    )


def _read_label_py(path):
    return read_label(path.decode() if isinstance(path, bytes) else str(path))


def _decode_label_pil(path):
    label = tf.numpy_function(_read_label_py, [path], tf.uint8, stateful=False)
    label.set_shape([None, None])
    return label


def _label_decoder(examples):
    mode = label_mode(examples[0].label)
    check_label_mode(mode, examples[0].label)
    return _decode_label_tf if mode == "L" else _decode_label_pil


def _join_values(values):
    return tf.strings.join(
        ["[", tf.strings.reduce_join(tf.strings.as_string(values), separator=", "), "]"]
    )


def make_loader(spec, examples):
    """A tf.data-side reader for ``examples`` of ``spec`` (labels decoded as the first one's
    format):
    ``load(image path, label path) -> (uint8 image (H, W, 3), uint8 train-id label (H, W))``, with
    the checks of the module docstring."""
    decode_label = _label_decoder(examples)
    lut = tf.constant(spec.lut, dtype=tf.uint8)
    valid = tf.constant(spec.valid, dtype=tf.bool)
    name = spec.name

    def load(image_path, label_path):
        image = _decode_image(image_path)
        raw = decode_label(label_path)
        ishape, lshape = tf.shape(image)[:2], tf.shape(raw)
        same = tf.reduce_all(tf.equal(ishape, lshape))
        size_check = _assert(
            same,
            "image ",
            image_path,
            " is ",
            _join_values(ishape),
            " (HxW) but its label ",
            label_path,
            " is ",
            _join_values(lshape),
        )
        raw_i = tf.cast(raw, tf.int32)
        in_table = tf.gather(valid, raw_i)

        def fail():
            bad = tf.sort(tf.unique(tf.boolean_mask(raw_i, tf.logical_not(in_table)))[0])
            check = _assert(
                False,
                "label values ",
                _join_values(bad),
                " in ",
                label_path,
                f" are not in the {name} label table",
            )
            with tf.control_dependencies([check]):
                return tf.identity(raw_i)

        with tf.control_dependencies([size_check]):
            raw_i = tf.cond(tf.reduce_all(in_table), lambda: tf.identity(raw_i), fail)
        return image, tf.gather(lut, raw_i)

    return load


def _paths(spec, split):
    examples = spec.examples(split)
    images = tf.constant([e.image for e in examples])
    labels = tf.constant([e.label for e in examples])
    return examples, images, labels


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def _color_jitter(image, seed):
    """image float32 0..1 -> jittered image (brightness, contrast, saturation, hue), clipped."""

    def u(k, lo, hi):
        return tf.random.stateless_uniform([], seed=tf.stack([seed, k]), minval=lo, maxval=hi)

    image = image * u(10, 0.75, 1.25)
    mean = tf.reduce_mean(image, axis=[0, 1], keepdims=True)
    image = (image - mean) * u(11, 0.75, 1.25) + mean
    image = tf.clip_by_value(image, 0.0, 1.0)
    image = tf.image.adjust_saturation(image, u(12, 0.7, 1.3))
    image = tf.image.adjust_hue(image, u(13, -0.04, 0.04))
    return tf.clip_by_value(image, 0.0, 1.0)


def _sampling_box(hw, seed, crop_size, scale_range, flip):
    """The random scale / crop / flip of one element as a ``crop_and_resize`` box ``(1, 4)``."""
    ch, cw = crop_size

    def u(k, lo=0.0, hi=1.0):
        return tf.random.stateless_uniform([], seed=tf.stack([seed, k]), minval=lo, maxval=hi)

    lo, hi = float(scale_range[0]), float(scale_range[1])
    s = u(1, lo, hi) if hi > lo else tf.constant(lo)
    h, w = hw[0], hw[1]
    # crop offset (integer, in scaled pixels); the window passes the edge when the image is small
    oy = tf.floor(u(2) * (tf.maximum(h * s - ch, 0.0) + 1.0))
    ox = tf.floor(u(3) * (tf.maximum(w * s - cw, 0.0) + 1.0))
    y0, x0 = oy / s, ox / s  # sampling grid in source pixels: y0 + i / s
    # The far end is pulled in by 1/500 pixel so that rounding in crop_and_resize never pushes a
    # sample that lies exactly on the last row/column outside the image (it would become padding).
    y1, x1 = y0 + (ch - 1) / s - 2e-3, x0 + (cw - 1) / s - 2e-3
    ny, nx = tf.maximum(h - 1.0, 1.0), tf.maximum(w - 1.0, 1.0)
    if flip:
        do_flip = u(4) < 0.5
        x0, x1 = tf.where(do_flip, x1, x0), tf.where(do_flip, x0, x1)
    return tf.reshape(tf.stack([y0 / ny, x0 / nx, y1 / ny, x1 / nx]), [1, 4])


def _sample_map(values, boxes, crop_size, fill):
    """Nearest sampling of an integer map ``(H, W)`` on ``boxes`` (``fill`` outside) -> int32."""
    ch, cw = crop_size
    m = tf.cast(values, tf.float32)[None, :, :, None]
    m = tf.image.crop_and_resize(
        m, boxes, [0], [ch, cw], method="nearest", extrapolation_value=float(fill)
    )[0, :, :, 0]
    m = tf.cast(tf.round(m), tf.int32)
    m.set_shape([ch, cw])
    return m


def augment_maps(
    image, maps, seed, *, crop_size, fills, scale_range=(0.5, 2.0), flip=True, color_jitter=True
):
    """``augment`` of an image and any number of integer maps that must stay aligned with it.

    ``maps``: integer ``(H, W)`` tensors (the label, and e.g. an instance-id map), each sampled by
    nearest neighbour on the image's grid, with the matching entry of ``fills`` where the window
    runs past the image. Returns ``(normalised float32 (h, w, 3), [int32 (h, w), ...])``.
    """
    ch, cw = int(crop_size[0]), int(crop_size[1])
    seed = tf.cast(seed, tf.int64)
    hw = tf.cast(tf.shape(image)[:2], tf.float32)
    boxes = _sampling_box(hw, seed, (ch, cw), scale_range, flip)
    ones = tf.ones_like(image[:, :, :1], dtype=tf.float32)
    rgbm = tf.concat([tf.cast(image, tf.float32), ones], axis=-1)[None]
    out = tf.image.crop_and_resize(rgbm, boxes, [0], [ch, cw], method="bilinear")[0]
    sampled = [_sample_map(m, boxes, (ch, cw), fill) for m, fill in zip(maps, fills)]
    rgb, inside = out[:, :, :3], out[:, :, 3:]
    rgb = rgb / 255.0
    if color_jitter:
        rgb = _color_jitter(rgb, seed)
    rgb = (rgb - MEAN) / STD * inside
    rgb.set_shape([ch, cw, 3])
    return rgb, sampled


def augment(
    image,
    label,
    seed,
    *,
    crop_size,
    scale_range=(0.5, 2.0),
    flip=True,
    color_jitter=True,
    ignore_label=255,
):
    """Random scale + crop/pad + flip (+ colour jitter) of one (image, label) pair.

    ``image`` uint8/float (H, W, 3) in 0..255, ``label`` integer (H, W) train ids, ``seed`` int64
    scalar. Returns (normalised float32 (h, w, 3), int32 (h, w)), ``(h, w) = crop_size``.
    """
    rgb, (lab,) = augment_maps(
        image,
        [label],
        seed,
        crop_size=crop_size,
        fills=[ignore_label],
        scale_range=scale_range,
        flip=flip,
        color_jitter=color_jitter,
    )
    return rgb, lab


def crop_pair(crop_size):
    """``crop_size`` (an int or ``(h, w)``) as ``(h, w)`` positive ints; a DataError otherwise."""
    if isinstance(crop_size, int):
        return crop_size, crop_size
    if len(crop_size) != 2 or min(int(crop_size[0]), int(crop_size[1])) < 1:
        raise DataError(f"crop_size must be (height, width) with positive sizes, not {crop_size!r}")
    return int(crop_size[0]), int(crop_size[1])


@dataclasses.dataclass(frozen=True)
class ExtraTarget:
    """A per-example map that the training pipeline reads beside the label, augments with it and
    turns into one more training target (the extension point of ``make_train_dataset``).

    Attributes:
      name: what the map is, for error messages (e.g. ``"instance map"``).
      path: ``Example -> file path`` of the map (e.g. ``lambda e: e.instance``).
      read: ``path string tensor -> integer (H, W) tensor``; it must be the label's size (checked).
      fill: the map's value where the augmentation window runs past the image.
      target: ``augmented int32 (h, w) map -> the element's target tensor``.
    """

    name: str
    path: object
    read: object
    fill: int
    target: object


def make_train_dataset(
    spec,
    split="train",
    *,
    batch_size,
    crop_size=(512, 512),
    scale_range=(0.5, 2.0),
    flip=True,
    color_jitter=True,
    seed=0,
    shuffle=True,
    num_parallel_calls=AUTOTUNE,
    image_scale=1.0,
    static_shape=True,
    cache=False,
    extra_targets=(),
):
    """One epoch of augmented training batches of ``spec``'s ``split``.

    Yields ``(image float32 [B, h, w, 3] normalised, label int32 [B, h, w])`` with
    ``(h, w) = crop_size``; the last incomplete batch is dropped. Call ``.repeat()`` for more epochs
    (each with a new order and new augmentations). See the module docstring for the details.

    ``image_scale`` (progressive resizing, ``tfseg.data.progressive``): images are first resized by
    this factor (bilinear; labels nearest), in the same single ``crop_and_resize`` as the random
    scale, i.e. the random scale range is multiplied by it; pass the stage's crop size as
    ``crop_size``. ``static_shape=False`` declares batch, height and width unknown in the element
    spec: a Keras train function traced on it serves every progressive stage without retracing
    (measured: a retrace costs as much as the first trace). ``cache=True`` decodes every image and
    label once and keeps them in memory (uint8: H*W*4 bytes per image; the batches are the same as
    without): for data sets that fit in RAM, where decoding would otherwise compete with training
    for the CPU every epoch.

    ``extra_targets``: ``ExtraTarget`` entries (e.g. the instance task's centre targets); each map
    is read, checked and augmented with the label (same grid, nearest) and the batches become
    ``(image, (label, target_1, ...))``.
    """
    crop = crop_pair(crop_size)
    scale_range = _scaled_range(scale_range, image_scale)
    if int(batch_size) < 1:
        raise DataError(f"batch_size must be >= 1, not {batch_size}")
    examples, images, labels = _paths(spec, split)
    if len(examples) < batch_size:
        raise DataError(
            f"split {split!r} of {spec.name} ({spec.root}) has {len(examples)} images, fewer than "
            f"batch_size={batch_size}"
        )
    decode = _example_decoder(make_loader(spec, examples), extra_targets)
    extras = tuple(extra_targets)
    fills = [spec.ignore_label] + [t.fill for t in extras]
    common = dict(crop_size=crop, scale_range=scale_range, flip=flip, color_jitter=color_jitter)

    def element(decoded, elem_seed):
        image, *maps = decoded
        image, maps = augment_maps(image, maps, elem_seed, fills=fills, **common)
        if not extras:
            return image, maps[0]
        return image, (maps[0], *[t.target(m) for t, m in zip(extras, maps[1:])])

    columns = (images, labels) + tuple(tf.constant([t.path(e) for e in examples]) for t in extras)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = seeded_batches(
        ds, decode, element, len(examples), shuffle, seed, batch_size, num_parallel_calls, cache
    )
    if not static_shape:
        ds = ds.map(_unknown_batch_shape)
    return ds.prefetch(AUTOTUNE)


def _scaled_range(scale_range, image_scale):
    """The random scale range multiplied by a progressive stage's ``image_scale`` (both checked)."""
    if not 0 < float(scale_range[0]) <= float(scale_range[1]):
        raise DataError(
            f"scale_range must be (low, high) with 0 < low <= high, not {scale_range!r}"
        )
    if not float(image_scale) > 0:
        raise DataError(f"image_scale must be > 0, not {image_scale!r}")
    image_scale = float(image_scale)
    return (float(scale_range[0]) * image_scale, float(scale_range[1]) * image_scale)


def _example_decoder(load, extra_targets):
    """``paths -> (image, label, *extra maps)``: the loader plus each ``ExtraTarget``'s map, checked
    to be the label's size."""

    def decode(paths):
        image, label = load(paths[0], paths[1])
        maps = []
        for target, path in zip(extra_targets, paths[2:]):
            values = target.read(path)
            same = tf.reduce_all(tf.equal(tf.shape(values), tf.shape(label)))
            check = _assert(
                same, f"{target.name} ", path, " and label ", paths[1], " differ in size"
            )
            with tf.control_dependencies([check]):
                maps.append(tf.identity(values))
        return (image, label, *maps)

    return decode


def seeded_batches(
    ds, decode, element, size, shuffle, seed, batch_size, num_parallel_calls, cache=False
):
    """Shuffle ``ds`` (``size`` elements, e.g. file paths) by ``seed``, map
    ``element(decode(item), elem_seed)`` with a per-element random seed drawn from ``seed``
    (deterministic order), and batch (dropping the rest). ``cache``: ``decode`` runs once per item
    and its output is kept in memory (``Dataset.cache``, before the shuffle: same order and seeds,
    so the same batches). Shared by the semantic and the instance training pipelines."""
    if cache:
        ds = ds.map(
            lambda *item: decode(item if len(item) > 1 else item[0]),  # tuple items come unpacked
            num_parallel_calls=num_parallel_calls,
            deterministic=True,
        ).cache()
        fn = element
    else:

        def fn(item, elem_seed):
            return element(decode(item), elem_seed)

    if shuffle:
        ds = ds.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, seeds)
    ds = ds.map(fn, num_parallel_calls=num_parallel_calls, deterministic=True)
    return ds.batch(int(batch_size), drop_remainder=True)


def _unknown_batch_shape(image, targets):
    """Same tensors; batch, height and width unknown in the static shape (channels kept)."""

    def relax(t):
        shape = [None, None, None] + t.shape.as_list()[3:]
        return tf.compat.v1.placeholder_with_default(t, shape)

    return relax(image), tf.nest.map_structure(relax, targets)


# --------------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------------


def make_eval_dataset(
    spec, split="val", *, stride=32, batch_size=1, scale=1.0, num_parallel_calls=AUTOTUNE
):
    """Full-resolution batches of ``split`` in ``spec.examples(split)`` order.

    Images are resized by ``scale`` (bilinear; labels nearest), normalised, then padded at the
    bottom/right to a multiple of ``stride`` (image with 0 = the mean colour, label with the ignore
    label). Yields ``(image float32 [B, H, W, 3], label int32 [B, H, W], index int32 [B])`` where
    ``index`` points into ``spec.examples(split)``. Batches of differently sized images are padded
    to the largest.
    """
    stride = int(stride)
    if stride < 1 or float(scale) <= 0 or int(batch_size) < 1:
        raise DataError(
            f"need stride >= 1, scale > 0, batch_size >= 1; got {stride}, {scale}, {batch_size}"
        )
    examples, images, labels = _paths(spec, split)
    load = make_loader(spec, examples)
    ignore = spec.ignore_label
    scale = float(scale)

    def element(image_path, label_path, index):
        image, label = load(image_path, label_path)
        label = tf.cast(label, tf.int32)
        if scale != 1.0:
            hw = tf.cast(tf.shape(image)[:2], tf.float32)
            size = tf.maximum(tf.cast(tf.round(hw * scale), tf.int32), 1)
            image = tf.image.resize(image, size, method="bilinear", antialias=scale < 1.0)
            label = tf.image.resize(label[:, :, None], size, method="nearest")[:, :, 0]
        image = normalize(image)
        hw = tf.shape(label)
        pad_h, pad_w = -hw[0] % stride, -hw[1] % stride
        image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]])
        label = tf.pad(label, [[0, pad_h], [0, pad_w]], constant_values=ignore)
        return image, label, index

    indices = tf.range(len(examples), dtype=tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((images, labels, indices))
    ds = ds.map(element, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.padded_batch(
        int(batch_size),
        padded_shapes=([None, None, 3], [None, None], []),
        padding_values=(0.0, ignore, 0),
    )
    return ds.prefetch(AUTOTUNE)


def measure_pipeline(ds, num_batches=20, warmup=2):
    """Images per second produced by ``ds`` alone (after ``warmup`` batches)."""
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    images = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(it)
        images += int(tf.shape(batch[0])[0])
    return images / (time.perf_counter() - start)
