"""Training on several devices and machines (``--distribute``).

One module fixture trains the same tiny run (SkipNet-VGG16, global batch 4, seed 0, SGD with
momentum at a constant rate, 2 epochs) three ways at once, each in its own process
(collective ops are configured at process start-up):

- one process (the reference);
- ``mirrored`` over two logical CPU devices of one process;
- ``multi_worker``: two worker processes on 127.0.0.1 (free ports in ``TF_CONFIG``).

All end with the reference's weights (float tolerance; SGD, because Adam's first steps move every
weight by the rate whatever the gradient's size, so float noise in tiny gradients would show), the
two workers with the same weights, and only the chief writes into the run directory. Then both
workers are started again with ``--resume`` and ``--epochs=3``: they continue after epoch 2 and
still agree.
"""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from tiny_run import tiny_config

from tfseg.config import ModelConfig, TrainConfig
from tfseg.training.distribute import DistributeError, chief_of, parse_tf_config

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYNTH = {"num_train": 8, "num_val": 1, "height": 64, "width": 64, "seed": 2}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp, run, epochs, distribute="none"):
    # SkipNet-VGG16 has no BatchNorm. With Keras' synchronised BatchNorm (--sync_bn) the forward
    # statistics match the one-process run's, but the first-layer weights of SkipNet-MobileNet
    # differ by ~1e-3 after two SGD steps (not explained yet; Keras computes the synchronised
    # variance as E[x^2] - E[x]^2, one process two-pass); without BatchNorm the distributed run
    # must equal the one-process run to float tolerance
    return tiny_config(
        tmp, run, epochs, SYNTH, color_jitter=False, optimizer="sgd", learning_rate=0.01,
        momentum=0.9, lr_schedule="constant", distribute=distribute,
        model=ModelConfig(name="skipnet", encoder="vgg16"),
    )


def _start(tmp, config, name, logical_cpus=1, tf_config=None):
    path = tmp / f"{name}.json"
    path.write_text(config.to_json())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFSEG_QUIET="1")
    env.pop("TF_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    args = [sys.executable, WORKER, str(path), str(tmp / f"{name}.npz"), str(logical_cpus)]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait(procs):
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, out[-4000:]
        outputs.append(out)
    return outputs


def _weights(tmp, name):
    with np.load(tmp / f"{name}.npz") as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def _workers(tmp, epochs, ports):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    config = _config(tmp, "multi", epochs, "multi_worker")
    return [
        _start(tmp, config, f"worker{i}", tf_config={"cluster": cluster,
                                                     "task": {"type": "worker", "index": i}})
        for i in range(2)
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from tfseg.data import get_dataset

    tmp = tmp_path_factory.mktemp("distribute")
    get_dataset("synthetic", str(tmp / "data"), **SYNTH)  # generated once, before the processes
    outputs = _wait([
        _start(tmp, _config(tmp, "single", 2), "single"),
        _start(tmp, _config(tmp, "mirrored", 2, "mirrored"), "mirrored", logical_cpus=2),
        *_workers(tmp, 2, [_free_port(), _free_port()]),
    ])
    weights = {n: _weights(tmp, n) for n in ("single", "mirrored", "worker0", "worker1")}
    listing = sorted(os.listdir(tmp / "multi"))
    resumed = _wait(_workers(tmp, 3, [_free_port(), _free_port()]))
    return tmp, weights, listing, outputs, resumed


def _assert_same_training(a, b):
    """The distributed run's weights ``a`` equal the one-process run's ``b`` to float tolerance.
    The gradient's sum runs in another order (two halves of the batch, then across replicas), so
    rounding may move a few elements further: on a Zen 3 (TensorFlow's own kernels, no oneDNN) one
    bias element of 512 differed by 3e-5 (12 % of it). At most 1 % of an array's elements may
    leave the tight tolerance, and none may differ by 1e-4 or more: a real fault (gradients
    summed instead of averaged, a replica not synchronised) moves nearly every element by the
    size of its update."""
    loose = ~np.isclose(a, b, rtol=1e-4, atol=1e-5)
    assert loose.mean() <= 0.01, f"{loose.sum()} of {loose.size} elements differ"
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_mirrored_over_two_devices_matches_one_process(runs):
    _, weights, _, outputs, _ = runs
    assert "2 replicas, 1 workers" in outputs[1]
    for a, b in zip(weights["single"], weights["mirrored"], strict=True):
        _assert_same_training(a, b)


@pytest.mark.slow
def test_two_workers_agree_and_match_one_process(runs):
    _, weights, _, outputs, _ = runs
    assert "2 replicas, 2 workers" in outputs[2]
    for a, b in zip(weights["worker0"], weights["worker1"], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(weights["single"], weights["worker0"], strict=True):
        _assert_same_training(a, b)


@pytest.mark.slow
def test_only_the_chief_writes_and_both_resume(runs):
    tmp, _, listing, outputs, resumed = runs
    assert "; chief" in outputs[2] and "writes nothing" in outputs[3]
    assert {"config.json", "checkpoints", "logs", "model.keras", "metrics.json"} <= set(listing)
    run = tmp / "multi"
    files = {os.path.relpath(os.path.join(d, f), run) for d, _, fs in os.walk(run) for f in fs}
    assert not [f for f in files if ".tmp" in f]
    assert all("resuming" in out and "after epoch 2" in out for out in resumed)
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    for a, b in zip(_weights(tmp, "worker0"), _weights(tmp, "worker1"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_tf_config_errors_name_the_problem():
    worker = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    cluster, kind, index = parse_tf_config(json.dumps(worker))
    assert (kind, index) == ("worker", 1) and not chief_of(cluster, kind, index)
    assert chief_of(cluster, "worker", 0)
    bad = {
        "": "needs the TF_CONFIG environment variable",
        "{cluster": "not valid JSON",
        json.dumps({"task": {"type": "worker", "index": 0}}): "needs a 'cluster'",
        json.dumps({**worker, "cluster": {"worker": ["a:1", "a:1"]}}): "names a:1 more than once",
        json.dumps({**worker, "task": {"type": "worker", "index": 2}}): "is not in the cluster",
        json.dumps({**worker, "cluster": {"ps": ["c:3"]}}): "'ps' job",
    }
    for text, message in bad.items():
        with pytest.raises(DistributeError, match=message):
            parse_tf_config(text)


def test_bad_tf_config_fails_before_training(tmp_path):
    env = dict(os.environ, TF_CONFIG='{"cluster": {"worker": ["h:1", "h:1"]}}')
    proc = subprocess.run(
        [sys.executable, "-m", "tfseg.train", "--distribute=multi_worker",
         f"--run_dir={tmp_path / 'run'}", f"--data_dir={tmp_path / 'data'}"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0 and "TF_CONFIG" in proc.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_global_batch_must_split_over_the_replicas():
    from tfseg.training.distribute import Distribution

    class Two:
        num_replicas_in_sync = 2

    dist = Distribution("mirrored", Two())
    dist.check_batch(4)
    with pytest.raises(DistributeError, match="--batch_size=3 is the global batch"):
        dist.check_batch(3)
    assert dataclasses.replace(TrainConfig(), distribute="mirrored").distribute == "mirrored"
