"""tfseg's networks on Keras' JAX and PyTorch backends (issue 20; tools/check_backends.py).

Keras fixes its backend at import, so the checks run in subprocesses of the tool: one TensorFlow
process writes each network's weights, .keras file and outputs; one process per backend builds the
same networks, loads the weights and the .keras file and compares the outputs, and trains one
step under JAX and torch. The full scan (every network and pair) is docs/backends.md's table.

The subset: the cheapest networks that, together, run every tfseg layer class (found by walking
the packages, so a new layer fails ``test_subset_runs_every_tfseg_layer`` until a network that
uses it is added here). ``LAYERS`` says which network brings which class.
"""

import importlib
import importlib.util
import inspect
import os
import pkgutil

import keras
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (64, 128)

#: network spec -> the tfseg layer classes it is in the subset for
LAYERS = {
    "enet": ("MaxUnpool2D", "PoolSwitches", "StrideGuard"),
    "ssn+instance+any_size": ("GuidedUpsample", "InstanceSampling", "InstanceUpsample",
                              "CropToInput", "BilinearUpsample"),
    "pp_liteseg": ("AdaptiveAvgPool2D", "ChannelMeanMax", "ResizeLike"),
    "distill:regseg": ("FrozenTeacher", "ChannelSplit", "PerGroupConv2D"),
    "aglnet": ("ChannelShuffle",),
    "dfanet": ("SubsampledPointwiseConv2D",),
    "fanet": ("FastAttention",),
    "farseenet": ("PixelShuffle",),
    "fpenet": ("ChannelMean",),
    "stdc": ("DetailFusionWeights",),
    "fpn/mobilenet": ("ExportableGroupNormalization",),
    "manet/mobilenet": ("PositionAttention",),
    "probe:guided_sampler": ("GuidedSampler",),
}
SUBSET = list(LAYERS)
TRAIN = ("enet", "stdc")  # one step each: plain logits; logits + aux + detail heads
PACKAGES = ("tfseg.layers", "tfseg.models", "tfseg.encoders", "tfseg.decoders", "tfseg.instance")


def _tool():
    spec = importlib.util.spec_from_file_location(
        "check_backends", os.path.join(REPO, "tools", "check_backends.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tfseg_layer_classes():
    """Every ``keras.layers.Layer`` subclass defined in tfseg's model packages."""
    found = set()
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            module = importlib.import_module(info.name)
            for name, obj in inspect.getmembers(module, inspect.isclass):
                if issubclass(obj, keras.layers.Layer) and obj.__module__ == module.__name__:
                    found.add(name)
    return found


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """TensorFlow's records of the subset (weights, .keras files, outputs in ``workdir``)."""
    tool = _tool()
    workdir = str(tmp_path_factory.mktemp("backends"))
    records = tool.run_backend("tensorflow", "reference", SUBSET, workdir, SIZE,
                               network_timeout=300)
    return tool, workdir, records


def test_subset_runs_every_tfseg_layer(reference):
    _, _, records = reference
    failed = {n: r.get("error") for n, r in records.items() if r.get("error")}
    assert not failed
    used = set().union(*(set(r["layers"]) for r in records.values()))
    assert tfseg_layer_classes() <= used, sorted(tfseg_layer_classes() - used)
    for spec, classes in LAYERS.items():  # the table above says true
        assert set(classes) <= set(records[spec]["layers"]), spec


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_same_logits_keras_files_and_training(reference, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (requirements-test.txt installs it)")
    tool, workdir, ref = reference
    got = tool.run_backend(backend, "check", SUBSET, workdir, SIZE, train_networks=TRAIN,
                           network_timeout=300)
    rows = [tool.judge(ref[n], got[n]) for n in SUBSET]
    bad = {r["network"]: r for r in rows if not tool.row_ok(r)}
    assert not bad, tool.markdown([r for r in rows if r["network"] in bad])
    for r in rows:  # the figures the check rests on
        assert r["built"] and r["keras_loads"] and r["max_abs_diff"] >= 0
    trained = {r["network"]: r["train"] for r in rows if "train" in r}
    assert set(trained) == set(TRAIN)
    assert all(t["ok"] and t["changed"] == t["weights"] for t in trained.values()), trained
