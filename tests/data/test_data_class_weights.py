"""ENet class weights against a numpy reference on hand-made label maps, and the tool."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfseg.data import DataError, enet_class_weights, get_dataset
from tfseg.data.class_weights import class_pixel_counts, enet_weights

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def hand_made(tmp_path, trees):
    """Folder dataset, 4 classes (class 3 absent), two 4x5 masks with 255 = ignore."""
    a = np.array(
        [[0, 0, 0, 0, 1], [0, 0, 1, 1, 1], [2, 2, 255, 255, 255], [0, 0, 0, 0, 0]], np.uint8
    )
    b = np.array([[1, 1, 1, 1, 1], [1, 1, 2, 2, 2], [255] * 5, [255] * 5], np.uint8)
    rng = np.random.default_rng(0)
    for name, m in (("a", a), ("b", b)):
        trees.write_png(
            str(tmp_path / "train" / "images" / f"{name}.png"),
            rng.integers(0, 255, (4, 5, 3), dtype=np.uint8),
        )
        trees.write_png(str(tmp_path / "train" / "masks" / f"{name}.png"), m)
    with open(tmp_path / "classes.json", "w") as f:
        json.dump(["w", "x", "y", "z"], f)
    return get_dataset("folder", str(tmp_path)), np.stack([a, b])


def test_counts_and_weights_match_numpy(hand_made):
    spec, masks = hand_made
    valid = masks[masks != 255]
    ref_counts = np.array([(valid == c).sum() for c in range(4)])
    assert ref_counts.tolist() == [11, 11, 5, 0]
    np.testing.assert_array_equal(class_pixel_counts(spec, "train"), ref_counts)
    p = ref_counts / ref_counts.sum()
    for c in (1.02, 1.1):
        result = enet_class_weights(spec, "train", c=c)
        np.testing.assert_allclose(result["frequencies"], p, rtol=1e-12)
        np.testing.assert_allclose(result["weights"], 1.0 / np.log(c + p), rtol=1e-12)
        assert result["class_names"] == ["w", "x", "y", "z"] and result["num_images"] == 2
    # an absent class gets the largest weight 1 / ln(c)
    assert result["weights"][3] == pytest.approx(1.0 / np.log(1.1))


def test_enet_weights_errors():
    with pytest.raises(DataError, match="no labelled pixels"):
        enet_weights([0, 0])
    with pytest.raises(DataError, match="c must be > 1"):
        enet_weights([1, 2], c=1.0)


def test_tool_writes_json(hand_made, tmp_path):
    spec, _ = hand_made
    out = tmp_path / "out" / "weights.json"
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "compute_class_weights.py"),
        "--dataset=folder",
        f"--data_dir={spec.root}",
        "--split=train",
        f"--output={out}",
        "--c=1.02",
    ]
    # The tool imports the installed package; here the checkout's.
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data) >= {"class_names", "weights", "frequencies"}
    p = np.array([11, 11, 5, 0]) / 27
    np.testing.assert_allclose(data["weights"], 1.0 / np.log(1.02 + p), rtol=1e-12)
    assert os.listdir(out.parent) == ["weights.json"]  # no temporary file left
    assert "wrote" in proc.stdout


def test_tool_compute_in_process(hand_made, tmp_path):
    import importlib.util

    path = os.path.join(REPO, "tools", "compute_class_weights.py")
    module_spec = importlib.util.spec_from_file_location("compute_class_weights", path)
    tool = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(tool)  # defines no flags: importing it has no side effect
    spec, _ = hand_made
    out = tmp_path / "w.json"
    result = tool.compute("folder", spec.root, "train", str(out), c=1.1)
    assert json.loads(out.read_text()) == result
    with pytest.raises(DataError, match="does not exist"):
        tool.compute("folder", str(tmp_path / "nope"), "train", str(out))
