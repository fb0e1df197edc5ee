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

#: network spec -> the tfseg layer classes it is in the subset for (torch checks them all)
LAYERS = {
    "enet": ("MaxUnpool2D", "PoolSwitches", "StrideGuard"),
    "ssn+instance+any_size": ("GuidedUpsample", "InstanceSampling", "InstanceUpsample",
                              "CropToInput", "BilinearUpsample"),
    "pp_liteseg": ("AdaptiveAvgPool2D", "ChannelMeanMax", "ResizeLike"),
    "regseg": ("ChannelSplit", "PerGroupConv2D"),
    "aglnet": ("ChannelShuffle",),
    "fanet": ("FastAttention",),
    "farseenet": ("PixelShuffle",),
    "fpenet": ("ChannelMean",),
    "stdc": ("DetailFusionWeights",),
    "cgnet": ("SameAveragePooling2D",),
    "probe:layers": ("GuidedSampler", "SubsampledPointwiseConv2D", "FrozenTeacher",
                     "PositionAttention", "ExportableGroupNormalization"),
}
#: JAX builds cost ~3x torch's here (XLA compiles each weight shape's initializer): a subset of
#: the subset, with the training step; the full scan (docs/backends.md) runs every network
JAX = ("enet", "ssn+instance+any_size", "pp_liteseg", "probe:layers")
#: one training step: on JAX the probe (the sampler's gathers, a frozen teacher, attention, group
#: norm; ENet's step took ~27 s of XLA compiling here), on torch ENet (max-unpooling) and STDC
#: (logits + aux + detail heads)
TRAIN = {"jax": ("probe:layers",), "torch": ("enet", "stdc")}
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


def _check(tool, backend, networks, workdir, ref):
    got = tool.run_backend(backend, "check", networks, workdir, SIZE,
                           train_networks=TRAIN[backend], network_timeout=300)
    rows = [tool.judge(ref[n], got[n]) for n in networks]
    bad = [r for r in rows if not tool.row_ok(r)]
    assert not bad, tool.markdown(bad)
    for r in rows:  # the figures the check rests on
        assert r["built"] and r["keras_loads"] and r["max_abs_diff"] >= 0
    trained = {r["network"]: r["train"] for r in rows if "train" in r}
    assert set(trained) == set(TRAIN[backend])
    assert all(t["ok"] for t in trained.values()), trained  # finite loss, weights changed


def test_every_tfseg_layer_on_jax_and_torch(tmp_path):
    """One test (the TensorFlow reference is written once, whatever pytest-xdist does)."""
    missing = [b for b in ("jax", "torch") if importlib.util.find_spec(b) is None]
    if len(missing) == 2:
        pytest.skip("neither jax nor torch is installed (requirements-test.txt installs both)")
    tool = _tool()
    ref = tool.run_backend("tensorflow", "reference", list(LAYERS), str(tmp_path), SIZE,
                           network_timeout=300)
    failed = {n: r.get("error") for n, r in ref.items() if r.get("error")}
    assert not failed
    used = set().union(*(set(r["layers"]) for r in ref.values()))
    assert tfseg_layer_classes() <= used, sorted(tfseg_layer_classes() - used)
    for spec, classes in LAYERS.items():  # the table above says true
        assert set(classes) <= set(ref[spec]["layers"]), spec
    if "torch" not in missing:
        _check(tool, "torch", list(LAYERS), str(tmp_path), ref)
    if "jax" not in missing:
        _check(tool, "jax", list(JAX), str(tmp_path), ref)
    if missing:
        pytest.skip(f"{missing[0]} is not installed; the other backend passed")
