"""experiments/reference_compare.py on a tiny fake reference checkout (a ``models/`` package whose
``model_hub`` maps ``enet`` to a one-convolution torch module) at 64x128, one round."""

import importlib.util
import json
import os
import sys

import pytest
from absl import app, flags

torch = pytest.importorskip("torch")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REGISTRY = '''
model_hub = {}


def register_model(*others):
    def decorator(cls):
        model_hub[cls.__name__.lower()] = cls
        return cls
    return decorator
'''
ENET = '''
import torch.nn as nn

from .model_registry import register_model


@register_model()
class ENet(nn.Module):
    def __init__(self, num_class=1, n_channel=3, use_aux=True):
        super().__init__()
        assert use_aux is False  # the script turns auxiliary heads off
        self.conv = nn.Conv2d(n_channel, num_class, 3, padding=1)

    def forward(self, x):
        return self.conv(x)
'''


def experiment_module(name):
    """Generator for a fixture: ``experiments/{name}.py`` loaded from its file, then the fake
    reference's ``models`` modules dropped from ``sys.modules``."""
    path = os.path.join(REPO, "experiments", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"tfseg_experiments_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for key in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
        del sys.modules[key]  # the fake reference


@pytest.fixture(scope="module")
def script():
    yield from experiment_module("reference_compare")


def _options(script, argv):
    fv = flags.FlagValues()
    script.define_flags(fv)
    fv(["reference_compare"] + argv)
    return fv


def _fake_reference(root):
    models = root / "models"
    models.mkdir(parents=True)
    (models / "__init__.py").write_text("raise ImportError('the script must not run this')\n")
    (models / "model_registry.py").write_text(REGISTRY)
    (models / "enet.py").write_text(ENET)
    (models / "erfnet.py").write_text("import not_installed_module\n")
    return root


def test_reference_compare_writes_the_section_and_the_json(script, tmp_path):
    ref = _fake_reference(tmp_path / "ref")
    out = tmp_path / "zoo.md"
    out.write_text("# Zoo\n\nbefore\n\n<!-- reference-compare:start -->\nold\n"
                   "<!-- reference-compare:end -->\n\nafter\n")
    opts = _options(script, [
        f"--reference_dir={ref}", "--networks=enet", "--input_size=64x128", "--rounds=1",
        "--warmup=1", "--tfseg_runtimes=keras", "--reference_exporter=torchscript",
        f"--out={out}", f"--json={tmp_path / 'r.json'}",
    ])  # fmt: skip
    doc = script.run(opts)
    (row,) = doc["rows"]
    assert row["network"] == "enet" and row["reference"] == "enet" and row["reasons"] == {}
    assert set(row["times_ms"]) == {"reference_eager", "reference_onnx", "keras"}
    assert all(len(v) == 1 and v[0] > 0 for v in row["times_ms"].values())
    assert row["best"] == "keras" and row["bn_statistics"] is True
    ratio = row["median_ms"]["reference_eager"] / row["median_ms"]["keras"]
    assert row["best_vs_reference_eager"] == pytest.approx(ratio)
    assert row["goal_reference_eager"] == (ratio >= 3.0)
    assert row["onnx_exporter"] == "TorchScript, opset 11"
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["times_ms"] == row["times_ms"]
    text = out.read_text()
    assert text.startswith("# Zoo\n\nbefore\n\n<!-- reference-compare:start -->\nCPU: ")
    assert text.endswith("<!-- reference-compare:end -->\n\nafter\n") and "old" not in text
    table = [line for line in text.splitlines() if line.startswith("| `enet`")]
    assert len(table) == 1 and f"{ratio:.2f}x" in table[0]
    assert "--networks=enet --input_size=64x128" in text and "calibrated on random" in text

    # the reference's erfnet cannot be imported: the row says why, tfseg's side is still there
    hub, failed, _ = script.load_reference(str(ref))
    assert "not_installed_module" in failed["erfnet"]
    assert script.networks_to_run([], hub, failed) == ["enet", "erfnet"]


def test_reference_compare_keeps_the_rows_of_a_run_killed_midway(script, tmp_path, monkeypatch):
    """The JSON is written after every network: a run that dies at its second network (the
    out-of-memory killer took a whole-zoo run at its 33rd) keeps the first row on disk."""
    ref = _fake_reference(tmp_path / "ref")

    def measure(name, *args):
        if name == "erfnet":
            raise MemoryError("killed")
        return {"network": name, "median_ms": {"keras": 1.0}, "best": "keras", "reasons": {}}

    monkeypatch.setattr(script, "measure_network", measure)
    opts = _options(script, [
        f"--reference_dir={ref}", "--networks=enet,erfnet", "--input_size=64x128",
        "--tfseg_runtimes=keras", f"--json={tmp_path / 'r.json'}",
    ])  # fmt: skip
    with pytest.raises(MemoryError):
        script.run(opts)
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [r["network"] for r in rows] == ["enet"]


def test_reference_compare_isolates_each_network_in_a_child(script, tmp_path, monkeypatch):
    """``--isolate``: each network measured by a child process with the run's flags (the memory
    one network's runtimes leave cannot reach the next); a child that dies costs its own row.
    The children here are stand-ins (a real one imports TensorFlow and torch: ~20 s); what the
    real one would get is checked by parsing its command line with the script's own flags."""
    ref = _fake_reference(tmp_path / "ref")
    opts = _options(script, [
        f"--reference_dir={ref}", "--networks=enet,erfnet", "--input_size=64x128", "--rounds=1",
        "--warmup=0", "--tfseg_runtimes=keras", "--reference_exporter=torchscript", "--isolate",
        f"--json={tmp_path / 'r.json'}", f"--out={tmp_path / 'zoo.md'}",
    ])  # fmt: skip
    argv = script.child_argv("enet", "/x/row.json", opts)
    assert argv[:2] == [sys.executable, os.path.join(REPO, "experiments", "reference_compare.py")]
    child = _options(script, argv[2:])
    for name in opts:
        want = {"networks": ["enet"], "json": "/x/row.json", "out": None, "merge": False,
                "isolate": False}.get(name, opts[name].value)  # fmt: skip
        assert child[name].value == want, name
    real = script.child_argv

    def child_argv(name, path, o):
        real(name, path, o)
        if name == "erfnet":  # dies as the out-of-memory killer would kill it
            code = "import os, sys; print('boom', file=sys.stderr); os.kill(os.getpid(), 9)"
        else:  # writes a measured row, as the real child does
            row = {"network": name, "reasons": {}, "times_ms": {"reference_eager": [30.0],
                   "reference_onnx": [20.0], "keras": [10.0]}}  # fmt: skip
            code = (f"import json; json.dump({{'rows': [{row!r}]}}, open({path!r}, 'w'))")
        return [sys.executable, "-c", code]

    monkeypatch.setattr(script, "child_argv", child_argv)
    doc = script.run(opts)
    enet, erfnet = doc["rows"]
    assert enet["times_ms"]["keras"] == [10.0] and "--isolate" not in enet["command"]
    assert erfnet["best"] is None and erfnet["median_ms"] == {}
    assert erfnet["reasons"]["all"] == ("the child process measuring it ended with signal 9 "
                                        "(killed: out of memory?): boom")
    assert json.loads((tmp_path / "r.json").read_text())["rows"][1]["reasons"] == erfnet["reasons"]
    assert (tmp_path / "zoo.md").read_text().count("| `erfnet` |") == 1


def test_reference_compare_errors_name_the_culprit(script, tmp_path):
    with pytest.raises(app.UsageError, match="no models/model_registry.py"):
        script.load_reference(str(tmp_path))
    ref = _fake_reference(tmp_path / "ref")
    hub, failed, _ = script.load_reference(str(ref))
    with pytest.raises(app.UsageError, match=r"\['nosuchnet'\] not in both"):
        script.networks_to_run(["enet", "nosuchnet"], hub, failed)
    with pytest.raises(app.UsageError, match=r"unknown \['tflite_int9'\]"):
        script.check_runtimes(["tflite", "tflite_int9"])
    opts = _options(script, [f"--reference_dir={tmp_path}", "--tfseg_runtimes=nope"])
    with pytest.raises(app.UsageError, match="nope"):  # before anything is built
        script.run(opts)


def test_merge_keeps_older_rows_and_may_add_runtimes(script, tmp_path):
    """--merge keeps the rows of networks not measured now; a run may time more runtimes than the
    file's (older rows show '-' there and a note says so), but not fewer or other settings."""
    def row(name, times):
        r = {"network": name, "reasons": {}, "settle_s": 0.2, "command": "c",
             "times_ms": {k: [v] for k, v in times.items()}}
        return script.summarize(r, [k for k in times if not k.startswith("reference")])

    base = {"cpu": "x", "input_size": "64x128", "threads": 2, "rounds": 1, "warmup": 1,
            "torch": "t", "onnxruntime": "o", "omp_wait_policy": "PASSIVE"}
    path = tmp_path / "r.json"
    old = {**base, "tfseg_runtimes": ["tflite"], "rows": [
        row("enet", {"reference_eager": 90.0, "reference_onnx": 40.0, "tflite": 30.0}),
        row("erfnet", {"reference_eager": 90.0, "reference_onnx": 40.0, "tflite": 30.0})]}
    path.write_text(json.dumps(old))
    doc = {**base, "tfseg_runtimes": ["tflite", "onnxruntime_int8"]}
    new = [row("enet", {"reference_eager": 90.0, "reference_onnx": 40.0, "tflite": 30.0,
                        "onnxruntime_int8": 15.0})]
    doc["rows"] = script.merged_rows(new, doc, str(path))
    assert [r["network"] for r in doc["rows"]] == ["enet", "erfnet"]
    assert doc["rows"][0]["best"] == "onnxruntime_int8" and doc["rows"][1]["best"] == "tflite"
    text = script.markdown(doc)
    assert "| `erfnet` | 90 | 40 | 30 | - | 30 (tflite) |" in text
    note = "- not timed with onnxruntime_int8 (older runs, before it joined the table): `erfnet`\n"
    assert note in text
    for other in ({"tfseg_runtimes": ["onnxruntime"]}, {"threads": 4}):
        with pytest.raises(app.UsageError, match="other settings"):
            script.merged_rows(new, {**doc, **other}, str(path))


def test_reference_bn_statistics_are_those_of_the_images(script):
    """The reference's BN running statistics come from one training-mode pass over the images
    (as tfseg's, ``recalibrate_batchnorm``); the network is left in eval mode, its momentum kept."""
    import numpy as np

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    images = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype("float32")
    assert script.reference_bn_statistics(net, images) == 1
    bn = net[1]
    with torch.no_grad():
        acts = net[0](torch.from_numpy(images))
    np.testing.assert_allclose(bn.running_mean.numpy(), acts.mean(dim=(0, 2, 3)).numpy(),
                               rtol=1e-4, atol=1e-6)
    assert not net.training and bn.momentum == 0.1


def test_a_named_section_and_a_cpuid_profile_in_the_command(script, tmp_path, monkeypatch):
    """``--section`` writes its own markers beside the default table; under ``tfseg.bench.isa``
    the listed command carries the profile it needs."""
    ref = _fake_reference(tmp_path / "ref")
    monkeypatch.setattr(script, "measure_network", lambda name, *a: {
        "network": name, "median_ms": {"reference_eager": 3.0, "reference_onnx": 2.0, "keras": 1.0},
        "times_ms": {}, "best": "keras", "best_vs_reference_eager": 3.0,
        "best_vs_reference_onnx": 2.0, "goal_reference_eager": True,
        "goal_reference_onnx": True, "reasons": {}, "bn_statistics": True, "settle_s": 0.2})
    monkeypatch.setenv("TFSEG_ISA", "avx2")
    monkeypatch.setenv("LD_PRELOAD", "/cache/cpuid_mask-0.so")
    out = tmp_path / "zoo.md"
    out.write_text("<!-- reference-compare:start -->\nnative\n<!-- reference-compare:end -->\n")
    opts = _options(script, [
        f"--reference_dir={ref}", "--networks=enet", "--tfseg_runtimes=keras",
        "--section=reference-compare-avx2", f"--out={out}",
    ])  # fmt: skip
    script.run(opts)
    text = out.read_text()
    assert text.startswith("<!-- reference-compare:start -->\nnative\n<!-- reference-compare:end")
    body = text.split("<!-- reference-compare-avx2:start -->\n")[1]
    assert body.startswith("CPU: ") and "CPUID masked to the avx2 profile" in body
    assert ("python -m tfseg.bench.isa --isa=avx2 -- python experiments/reference_compare.py "
            in body) and "--section=reference-compare-avx2" in body
    assert body.rstrip().endswith("<!-- reference-compare-avx2:end -->")
