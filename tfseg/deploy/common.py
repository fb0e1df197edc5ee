"""Pre- and post-processing of the on-device runner, identical to tfseg's.

Standalone: numpy only (PIL or OpenCV for files, imported where used); Python 3.6 syntax, so it
runs on JetPack 4.6 (Python 3.6) and 5.1 (Python 3.8). A test checks it against
``tfseg.data.normalize`` and tfseg's argmax on the same image.

- ``preprocess``: RGB uint8 (h, w, 3) -> ``((x / 255 - MEAN) / STD)`` float32 (ImageNet mean/std),
  padded at the bottom/right to a multiple of ``stride`` with 0 (the mean colour), batch of 1: the
  exact computation of ``tfseg.data.normalize`` + ``tfseg.predict``'s padding.
- ``labels_from_logits``: argmax over the class axis (first maximum wins, like ``tf.argmax``),
  cropped back to (h, w).
"""

import os
import time

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

# Cityscapes train-id colours (classes 0..18), as in tfseg.data.labels.
CITYSCAPES_COLORS = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)  # fmt: skip


def normalize(image):
    """uint8 (or float 0..255) RGB -> float32 ``(x / 255 - MEAN) / STD``."""
    return ((np.asarray(image, dtype=np.float32) / 255.0 - MEAN) / STD).astype(np.float32)


def pad_to_stride(x, stride):
    """Pad (h, w, c) at the bottom/right with 0 to multiples of ``stride``."""
    h, w = x.shape[:2]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="constant")
    return x


def resize_image(image, size):
    """Bilinear resize of RGB uint8 ``image`` to ``size`` = (H, W)."""
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    try:
        import cv2

        return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    except ImportError:
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def resize_labels(labels, size):
    """Nearest-neighbour resize of a label map to ``size`` = (H, W)."""
    h, w = int(size[0]), int(size[1])
    if labels.shape[:2] == (h, w):
        return labels
    rows = np.minimum((np.arange(h) + 0.5) * labels.shape[0] / h, labels.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(w) + 0.5) * labels.shape[1] / w, labels.shape[1] - 1).astype(int)
    return labels[rows][:, cols]


def preprocess(image, stride=32, input_size=None):
    """RGB uint8 (h, w, 3) -> float32 (1, H, W, 3) network input.

    ``input_size`` None (a dynamic-size engine) or a size that the padded image matches: pad to
    ``stride``. Any other fixed ``input_size``: resize the image to it (the labels are resized back
    by ``postprocess``).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (h, w, 3), got shape {image.shape}")
    h, w = image.shape[:2]
    padded = (h + (-h) % stride, w + (-w) % stride)
    if input_size is not None and tuple(input_size) != padded:
        image = resize_image(image, input_size)
    return pad_to_stride(normalize(image), stride)[None]


def labels_from_logits(logits):
    """(1, H, W, C) or (H, W, C) logits -> (H, W) int32 labels (first maximum wins)."""
    logits = np.asarray(logits)
    if logits.ndim == 4:
        logits = logits[0]
    return np.argmax(logits, axis=-1).astype(np.int32)


def postprocess(output, image_shape, stride=32, input_size=None):
    """Network output (logits (1, H, W, C) or labels (1, H, W)) -> uint8 labels (h, w)."""
    output = np.asarray(output)
    if output.ndim == 4 or (output.ndim == 3 and output.dtype.kind == "f"):
        labels = labels_from_logits(output)
    else:
        labels = output[0] if output.ndim == 3 else output
    h, w = image_shape[:2]
    padded = (h + (-h) % stride, w + (-w) % stride)
    if input_size is not None and tuple(input_size) != padded:
        labels = resize_labels(labels, (h, w))
    return labels[:h, :w].astype(np.uint8)


def palette(num_classes):
    """Colours: Cityscapes' for 19 classes, else a fixed, evenly spread set."""
    if num_classes == 19:
        return CITYSCAPES_COLORS
    hues = (np.arange(num_classes) * 0.618033988749895) % 1.0
    out = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for i, hue in enumerate(hues):
        k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
        rgb = 1.0 - 0.8 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
        out[i] = np.round(rgb * 255).astype(np.uint8)
    return out


def colorize(labels, colors):
    colors = np.asarray(colors, dtype=np.uint8)
    return colors[np.clip(labels, 0, len(colors) - 1)]


def overlay(image, color, alpha=0.5):
    """Colour mask blended over the image (as ``tfseg.predict``)."""
    return (image * (1 - alpha) + color * alpha).astype(np.uint8)


def find_inputs(path):
    """``("images", [files])`` for an image or a folder of images, ``("video", [file])`` for a
    video."""
    if os.path.isdir(path):
        files = sorted(
            os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not files:
            raise FileNotFoundError(f"no images in folder {path}")
        return "images", files
    if not os.path.isfile(path):
        raise FileNotFoundError(f"input {path} does not exist")
    if path.lower().endswith(VIDEO_EXTENSIONS):
        return "video", [path]
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return "images", [path]
    raise ValueError(f"input {path} is neither an image nor a video file")


def read_image(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def write_png(path, array):
    from PIL import Image

    Image.fromarray(np.asarray(array)).save(path)


def latency_stats(seconds):
    """Median / p90 / mean latency in ms and FPS (1000 / median) of a list of durations."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    median = float(np.median(ms))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(ms.mean()),
        "fps": 1e3 / median if median > 0 else float("inf"),
        "runs": int(ms.size),
    }


def time_calls(fn, warmup, runs):
    """Call ``fn()`` ``warmup`` times untimed, then ``runs`` times timed; returns the durations."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times
