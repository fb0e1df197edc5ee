"""Writing the synthetic set in Cityscapes format, and the ``synthetic`` dataset.

``generate_synthetic`` renders the set into a temporary sibling directory and renames it into
place with the manifest (``synthetic.json``) written last; the ``synthetic`` dataset generates the
set on first use and reads it back with the Cityscapes reader.
"""

import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from tfseg.data.cityscapes import cityscapes_examples
from tfseg.data.core import DataError, DatasetSpec
from tfseg.data.labels import CITYSCAPES_LABEL_ID_COLORS, cityscapes_table
from tfseg.data.synthetic.render import render_scene
from tfseg.registry import DATASETS

GENERATOR_VERSION = 2  # bump whenever the rendering changes: older sets are regenerated
MANIFEST = "synthetic.json"
IMAGES_PER_CITY = 50
_SPLIT_CODE = {"train": 0, "val": 1}


def _params(num_train, num_val, height, width, seed):
    """The generator parameters as stored in the manifest; ``DataError`` if one is bad."""
    for name, v, lo in (
        ("num_train", num_train, 0),
        ("num_val", num_val, 0),
        ("height", height, 16),
        ("width", width, 16),
    ):
        if int(v) != v or int(v) < lo:
            raise DataError(f"synthetic option {name} must be an integer >= {lo}, not {v!r}")
    if num_train + num_val < 1:
        raise DataError("synthetic data set needs num_train + num_val >= 1")
    return {
        "version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "height": int(height),
        "width": int(width),
        "seed": int(seed),
    }


def _read_manifest(data_dir):
    """The manifest of the set in ``data_dir``, or None (no set, or an unreadable manifest)."""
    try:
        with open(os.path.join(data_dir, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _names(split, index, params):
    """City and id of image ``index`` of ``split``; validation cities follow the training ones."""
    first = 0 if split == "train" else -(-params["num_train"] // IMAGES_PER_CITY)
    city = f"synth{first + index // IMAGES_PER_CITY}"
    return city, f"{city}_{index % IMAGES_PER_CITY:06d}_000019"


def _write_example(root, split, index, params):
    """Render image ``index`` of ``split`` and write its four Cityscapes-format PNGs under root."""
    seed = (params["seed"], _SPLIT_CODE[split], index)
    image, label, instance = render_scene(seed, params["height"], params["width"])
    city, ident = _names(split, index, params)
    img_dir = os.path.join(root, "leftImg8bit", split, city)
    gt_dir = os.path.join(root, "gtFine", split, city)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    Image.fromarray(image).save(os.path.join(img_dir, f"{ident}_leftImg8bit.png"), compress_level=1)
    gt = os.path.join(gt_dir, f"{ident}_gtFine_")
    Image.fromarray(label).save(gt + "labelIds.png", compress_level=1)
    Image.fromarray(instance.astype(np.uint16)).save(gt + "instanceIds.png", compress_level=1)
    Image.fromarray(CITYSCAPES_LABEL_ID_COLORS[label]).save(gt + "color.png", compress_level=1)


def _remove_stale_temps(parent, base):
    """Remove temporary directories of ``base`` left by generator processes that are gone."""
    for name in os.listdir(parent):
        if not name.startswith(f".{base}.tmp-"):
            continue
        try:
            pid = int(name.split("-")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            pass


def generate_synthetic(
    data_dir, *, num_train=300, num_val=50, height=256, width=512, seed=0, verbose=True
):
    """Write the synthetic Cityscapes-format set into ``data_dir`` unless it is already there.

    A set is complete when ``data_dir/synthetic.json`` exists with the same parameters; it is then
    reused. Otherwise the set is rendered into a temporary sibling directory and renamed into place
    in one step, so an interrupted run never leaves a partial set that looks complete. An existing
    ``data_dir`` that is empty or holds a synthetic set with other parameters is replaced; any other
    non-empty directory raises ``DataError``. Returns ``data_dir``.
    """
    params = _params(num_train, num_val, height, width, seed)
    data_dir = os.fspath(data_dir)
    if _read_manifest(data_dir) == params:
        return data_dir
    _check_replaceable(data_dir)
    parent = os.path.dirname(os.path.abspath(data_dir))
    base = os.path.basename(os.path.abspath(data_dir))
    os.makedirs(parent, exist_ok=True)
    _remove_stale_temps(parent, base)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-{os.getpid()}-", dir=parent)
    start = time.perf_counter()
    total = params["num_train"] + params["num_val"]
    if verbose:
        _log(
            f"generating the synthetic data set ({params['num_train']} train + "
            f"{params['num_val']} val images, {height}x{width}) in {data_dir} ..."
        )
    try:
        _write_examples(tmp, params)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump(params, f, indent=2)
        _move_into_place(tmp, data_dir, params)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    if verbose:
        seconds = time.perf_counter() - start
        _log(f"generated {total} images in {seconds:.1f} s ({1000 * seconds / total:.0f} ms/image)")
    return data_dir


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _check_replaceable(data_dir):
    """``DataError`` unless ``data_dir`` is absent, empty or holds a synthetic set."""
    if os.path.exists(data_dir):
        if not os.path.isdir(data_dir):
            raise DataError(f"data_dir {data_dir} exists and is not a directory")
        if os.listdir(data_dir) and _read_manifest(data_dir) is None:
            raise DataError(
                f"data_dir {data_dir} is not empty and holds no synthetic data set ({MANIFEST} "
                f"missing); choose a new or empty directory for --dataset=synthetic"
            )


def _write_examples(root, params):
    """Render and write every example of both splits under ``root`` (a few threads)."""
    jobs = [(s, i) for s in ("train", "val") for i in range(params[f"num_{s}"])]
    # numpy and zlib release the GIL: two threads give ~1.5x on two cores
    pool = concurrent.futures.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)))
    try:
        futures = [pool.submit(_write_example, root, split, i, params) for split, i in jobs]
        for future in futures:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _move_into_place(tmp, data_dir, params):
    """Rename the finished set ``tmp`` to ``data_dir``, replacing an older set there."""
    parent = os.path.dirname(os.path.abspath(data_dir))
    base = os.path.basename(os.path.abspath(data_dir))
    if os.path.exists(data_dir):
        old = tempfile.mkdtemp(prefix=f".{base}.tmp-{os.getpid()}-old-", dir=parent)
        os.rmdir(old)
        os.rename(data_dir, old)
        os.rename(tmp, data_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        try:
            os.rename(tmp, data_dir)
        except OSError:
            if _read_manifest(data_dir) != params:  # not a concurrent twin: a real error
                raise


@DATASETS.register("synthetic", label_format="labelIds", has_instances=True)
def synthetic(data_dir, *, num_train=300, num_val=50, height=256, width=512, seed=0):
    """Synthetic street scenes in Cityscapes format (generated on first use; 19 classes)."""
    generate_synthetic(
        data_dir, num_train=num_train, num_val=num_val, height=height, width=width, seed=seed
    )
    return DatasetSpec(
        "synthetic",
        data_dir,
        cityscapes_table(),
        lambda split: cityscapes_examples(data_dir, split),
        options={
            "num_train": num_train,
            "num_val": num_val,
            "height": height,
            "width": width,
            "seed": seed,
        },
    )
