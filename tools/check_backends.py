"""Every tfseg network on Keras' JAX and PyTorch backends: same weights, same logits as TensorFlow.

    python tools/check_backends.py                                  # every network, jax and torch
    python tools/check_backends.py --networks=enet,skipnet/mobilenet --backends=jax
    python tools/check_backends.py --size=64x128 --json=backends.json --markdown=backends.md

Keras fixes its backend when it is imported (``KERAS_BACKEND``), so every backend runs in its own
subprocess of this program (``--worker``):

1. a TensorFlow process builds each network (seeded) and writes its ``.weights.h5``, its ``.keras``
   file and its outputs on one fixed input;
2. one process per other backend builds the same architecture, loads the ``.weights.h5`` and
   compares its outputs with TensorFlow's (``max |diff|``; it passes below ``--atol`` times the
   larger of 1 and the largest |logit|: random-weight logits of deep networks reach the hundreds),
   then loads the ``.keras`` file written under TensorFlow (custom layers come back through their
   registration) and compares its outputs too;
3. for ``--train_networks``, one ``train_on_batch`` (Adam, tfseg's cross entropy with ignored
   pixels) on a batch of 2: the loss must be finite and the weights must change.

A network is ``name`` (a complete network, built with every head it has: ``aux``, ``detail``),
``decoder/encoder`` (a pair), ``name+instance`` (with an attachable head; its iterations cut to 2),
``name+any_size`` (``build_model(..., any_size=True)``: outputs cropped to the input),
``distill:name`` (``name`` with a frozen teacher of the same architecture attached, as
``tfseg.train --teacher_model`` does) or ``probe:layers`` (a small model of the tfseg layers no
network uses, or only an expensive one: ``GuidedSampler``, ``SubsampledPointwiseConv2D``,
``FrozenTeacher``, ``PositionAttention``, ``ExportableGroupNormalization``).

Max-unpooling networks (ENet, SegNet: ``PoolSwitches``) route each value to the position of its
2x2 window's maximum: where two values of a window differ by float rounding only, the backends
may pick different positions and the outputs there differ by O(1). Such a network passes when
its max |diff| is within tolerance, or when at most ``SWITCH_FLIP_FRACTION`` of its output values
are off (``off_fraction``, reported). ``--networks`` defaults to every
registered network and every decoder x encoder pair. One network that fails, hangs
(``--network_timeout``) or crashes its process is reported as such; the scan goes on.

It imports the installed package (``pip install -e .``, or run it from the repository root with
``PYTHONPATH=.``).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

from absl import app, flags

HEAD_ITERATIONS = 2  # instance head iterations in a check (30 by default: slow, same layers)
TRAIN_DEFAULT = ("enet", "bisenetv2", "fastscnn", "stdc", "skipnet/mobilenet")

FLAGS = flags.FLAGS
flags.DEFINE_list("backends", ["jax", "torch"], "backends compared with TensorFlow")
flags.DEFINE_list("networks", [], "networks to check (default: every network and every pair)")
flags.DEFINE_list("train_networks", list(TRAIN_DEFAULT),
                  "networks given one training step on each backend ('' for none)")
flags.DEFINE_string("size", "64x128", "input size HxW")
flags.DEFINE_integer("num_classes", 19, "classes")
flags.DEFINE_float("atol", 1e-4, "tolerance on max |diff|, times max(1, max |logit|)")
flags.DEFINE_integer("network_timeout", 900, "seconds one network may take in one backend")
flags.DEFINE_string("workdir", None, "where the weights and logits go (default: a temp folder)")
flags.DEFINE_string("json", None, "write the results as JSON here")
flags.DEFINE_string("markdown", None, "write the table as markdown here")
# internal: the subprocess of one backend
flags.DEFINE_enum("worker", None, ["reference", "check"], "internal: run as a backend worker")
flags.DEFINE_string("results", None, "internal: the worker's JSON-lines results file")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- networks

def every_network():
    """Every registered complete network, then every decoder/encoder pair."""
    from tfseg.registry import DECODERS, ENCODERS, MODELS

    return list(MODELS.names()) + [f"{d}/{e}" for d in DECODERS.names() for e in ENCODERS.names()]


def parse_network(spec):
    """``(name, encoder or None, attachable heads, distill, any_size)`` of a network spec."""
    distill = spec.startswith("distill:")
    spec = spec[len("distill:"):] if distill else spec
    spec, *extra = spec.split("+")
    name, _, encoder = spec.partition("/")
    any_size = "any_size" in extra
    heads = tuple(e for e in extra if e != "any_size")
    return name, encoder or None, heads, distill, any_size


def layers_probe(num_classes, size):
    """Stride-4 scores (``SubsampledPointwiseConv2D``) sampled at coordinates predicted from the
    image (``GuidedSampler``), plus the same computed by a frozen copy (``FrozenTeacher``), plus
    MAnet's position attention and FPN's group normalisation on stride-8 features (small here:
    the networks that bring them carry ~37 M and ~5 M weights)."""
    import keras

    from tfseg.decoders.manet import PositionAttention
    from tfseg.layers.conv import SubsampledPointwiseConv2D
    from tfseg.layers.norm import ExportableGroupNormalization
    from tfseg.layers.sampler import GuidedSampler
    from tfseg.layers.teacher import FrozenTeacher

    def student(prefix):
        image = keras.Input((*size, 3))
        scores = SubsampledPointwiseConv2D(num_classes, strides=4, name=f"{prefix}_scores")(image)
        coords = keras.layers.Conv2D(2, 1, activation="sigmoid", name=f"{prefix}_coords")(image)
        coords = keras.layers.Rescaling(size[0] // 4 - 1)(coords)  # (y, x) in the score map
        out = GuidedSampler(name=f"{prefix}_sampler")([scores, coords])
        return keras.Model(image, out, name=f"{prefix}_probe")

    image = keras.Input((*size, 3))
    out = student("student")(image)
    out = keras.layers.Add()([out, FrozenTeacher(student("teacher"), name="teacher")(image)])
    x = keras.layers.Conv2D(16, 3, strides=8, padding="same", name="features")(image)
    x = ExportableGroupNormalization(groups=4, epsilon=1e-5, name="features_gn")(x)
    top, center = (keras.layers.Conv2D(4, 1, name=f"pab_{k}")(x) for k in ("top", "center"))
    x = PositionAttention(name="pab")([top, center, x])
    x = keras.layers.Conv2D(num_classes, 1, name="pab_scores")(x)
    x = keras.layers.UpSampling2D(8, interpolation="bilinear", name="pab_up")(x)
    out = keras.layers.Add()([out, x])
    return keras.Model(image, out, name="layers_probe")


PROBES = {"probe:layers": layers_probe}
SWITCH_FLIP_FRACTION = 0.1  # ENet on JAX: 1 of 8192 switches of enet_b2_0 flipped, 6.3% off


def build(spec, num_classes, size, seed=0):
    """The model of ``spec`` at ``size``, built after seeding Keras with ``seed``."""
    import keras

    import tfseg
    from tfseg.registry import MODELS

    keras.utils.set_random_seed(seed)
    if spec in PROBES:
        return PROBES[spec](num_classes, size)
    name, encoder, extra, distill, any_size = parse_network(spec)
    heads = (MODELS.info(name).heads if name in MODELS.names() else ()) + extra
    head_kwargs = {"instance": {"iterations": HEAD_ITERATIONS}} if "instance" in heads else None
    kwargs = dict(encoder=encoder, input_shape=(*size, 3), heads=heads, head_kwargs=head_kwargs,
                  any_size=any_size)
    model = tfseg.build_model(name, num_classes, **kwargs)
    if distill:
        from tfseg.models.outputs import logits_view
        from tfseg.training.distill import attach_teacher

        keras.utils.set_random_seed(seed + 1)
        teacher = logits_view(tfseg.build_model(name, num_classes, **kwargs))
        model = attach_teacher(model, teacher)
    return model


def fill_zero_weights(model, std=0.1, seed=5):
    """Give every all-zero trainable weight (biases, BN offsets, zero-initialised classifiers)
    random values, so that the comparison sees every weight; returns how many it filled."""
    import numpy as np

    rng = np.random.default_rng(seed)
    filled = 0
    for w in model.trainable_weights:
        value = np.asarray(w.numpy())
        if value.size and not value.any():
            w.assign(rng.normal(0.0, std, value.shape).astype(value.dtype))
            filled += 1
    return filled


def fixed_input(size, batch=1, seed=0):
    import numpy as np

    return np.random.default_rng(seed).uniform(-1, 1, (batch, *size, 3)).astype("float32")


def outputs_of(model, x):
    """The model's outputs on ``x`` (inference mode) as a list of float32 numpy arrays."""
    import keras
    import numpy as np

    # JAX: one compiled call (what predict does) is ~2x quicker here than op-by-op dispatch
    jax = keras.backend.backend() == "jax"
    out = model.predict_on_batch(x) if jax else model(x, training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(keras.ops.convert_to_numpy(o), dtype="float32") for o in out]


def tfseg_layer_classes(model):
    """Names of the tfseg-defined layer classes in ``model`` (nested models included)."""
    found, stack = set(), [model]
    while stack:
        layer = stack.pop()
        if type(layer).__module__.startswith("tfseg"):
            found.add(type(layer).__name__)
        stack += list(getattr(layer, "layers", []))
        teacher = getattr(layer, "teacher", None)
        if teacher is not None:
            stack.append(teacher)
    return sorted(found)


def _safe(spec):
    return spec.replace("/", "__").replace(":", "_").replace("+", "_")


# ---------------------------------------------------------------- workers (one backend each)

def _first_line(e):
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def reference_one(spec, workdir, size, num_classes):
    """TensorFlow side: weights, .keras file and outputs of ``spec``."""
    import keras
    import numpy as np

    base = os.path.join(workdir, _safe(spec))
    model = build(spec, num_classes, size)
    filled = fill_zero_weights(model)
    outs = outputs_of(model, fixed_input(size))
    model.save_weights(base + ".weights.h5")
    model.save(base + ".keras")
    np.savez(base + ".outputs.npz", *outs)
    record = {"params": int(model.count_params()), "zero_filled": filled,
              "layers": tfseg_layer_classes(model),
              "logit_scale": float(max(np.abs(o).max() for o in outs))}
    keras.backend.clear_session()
    return record


def _diff(outs, ref, atol):
    """``(max |diff|, fraction of values off by more than atol * max(1, max |ref|))``."""
    import numpy as np

    if len(outs) != len(ref):
        raise ValueError(f"{len(outs)} outputs, TensorFlow gave {len(ref)}")
    for o, r in zip(outs, ref):
        if o.shape != r.shape:
            raise ValueError(f"output shape {o.shape}, TensorFlow gave {r.shape}")
    tol = atol * max(1.0, max(float(np.abs(r).max()) for r in ref))
    off = sum(int((abs(o - r) > tol).sum()) for o, r in zip(outs, ref))
    return (float(max(abs(o - r).max() for o, r in zip(outs, ref))),
            off / sum(r.size for r in ref))


def check_one(spec, workdir, size, num_classes, train, record, atol=1e-4):
    """Other backend: build, load the TF weights, compare; load the TF .keras file; train.
    Fills ``record`` as it goes (what was reached stays in it when a step raises)."""
    import keras
    import numpy as np

    base = os.path.join(workdir, _safe(spec))
    with np.load(base + ".outputs.npz") as f:
        ref = [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]
    record.update(built=False, max_abs_diff=None, keras_loads=None, keras_diff=None)
    x = fixed_input(size)
    model = build(spec, num_classes, size, seed=1)  # other random weights: the load must matter
    record["built"] = True
    model.load_weights(base + ".weights.h5")
    record["max_abs_diff"], record["off_fraction"] = _diff(outputs_of(model, x), ref, atol)
    errors = []
    try:
        from tfseg.models.saving import load_model

        loaded = load_model(base + ".keras")
        record["keras_loads"] = True
        record["keras_diff"], record["keras_off_fraction"] = _diff(
            outputs_of(loaded, x), ref, atol)
        del loaded
    except Exception as e:  # reported, the other checks go on
        record["keras_loads"] = False
        errors.append(f".keras: {_first_line(e)}")
    if train:
        try:
            record["train"] = train_step(model, size, num_classes)
        except Exception as e:
            record["train"] = {"ok": False}
            errors.append(f"train: {_first_line(e)}")
    if errors:
        record["error"] = "; ".join(errors)
    keras.backend.clear_session()


def train_step(model, size, num_classes):
    """One ``train_on_batch`` on 2 random images (1/8 of the pixels ignored)."""
    import keras
    import numpy as np

    from tfseg.losses import ResizedLabelLoss, SegmentationCrossEntropy

    rng = np.random.default_rng(3)
    x = fixed_input(size, batch=2, seed=4)
    y = rng.integers(0, num_classes, (2, *size)).astype("int32")
    y[rng.random(y.shape) < 0.125] = 255
    # as the semantic task: the cross entropy (on labels resized to aux outputs), STDC's detail
    # loss for its detail head; instance centres and distillation pairs no loss here
    from tfseg.detail_loss import DetailLoss
    from tfseg.models.anatomy import get_anatomy

    try:
        kinds = [kind for _, kind in get_anatomy(model).outputs]
    except ValueError:  # a probe: one logits output, no anatomy
        kinds = ["logits"]
    n_out = len(kinds)
    losses = [SegmentationCrossEntropy() if k == "logits"
              else ResizedLabelLoss(SegmentationCrossEntropy()) if k == "aux"
              else DetailLoss() if k == "detail" else None for k in kinds]
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=losses if n_out > 1 else losses[0])
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]
    t = time.perf_counter()
    loss = model.train_on_batch(x, [y] * n_out if n_out > 1 else y)
    seconds = time.perf_counter() - t
    loss = float(np.ravel(loss)[0])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    changed = sum(int(not np.array_equal(a, b)) for a, b in zip(after, before))
    ok = bool(np.isfinite(loss) and changed > 0)
    return {"ok": ok, "loss": loss, "changed": changed, "weights": len(before),
            "seconds": round(seconds, 2)}


def run_worker(role, networks, workdir, size, num_classes, train_networks, results):
    """Process ``networks`` in this process's backend, one JSON line per event in ``results``."""
    import keras

    backend = keras.backend.backend()
    for spec in networks:
        with open(results, "a") as f:
            f.write(json.dumps({"network": spec, "event": "start", "time": time.time()}) + "\n")
        t = time.perf_counter()
        record = {"built": False}
        try:
            if role == "reference":
                record.update(reference_one(spec, workdir, size, num_classes), built=True)
            else:
                check_one(spec, workdir, size, num_classes, spec in train_networks, record)
        except Exception as e:
            record["error"] = _first_line(e)
            if os.environ.get("TFSEG_CHECK_TRACEBACK"):
                traceback.print_exc()
            try:
                keras.backend.clear_session()
            except Exception:
                pass
        record.update(network=spec, backend=backend, event="done",
                      seconds=round(time.perf_counter() - t, 2))
        with open(results, "a") as f:
            f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------- driver

def _read(results):
    if not os.path.exists(results):
        return []
    with open(results) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_backend(backend, role, networks, workdir, size, num_classes=19, train_networks=(),
                network_timeout=900, log=None):
    """Run ``networks`` in worker subprocesses of ``backend``; ``{network: record}``.

    A worker that dies or overruns ``network_timeout`` on one network is killed, that network is
    recorded with the reason, and a new worker continues with the rest."""
    results = os.path.join(workdir, f"{role}_{backend}.jsonl")
    if os.path.exists(results):
        os.remove(results)
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", TFSEG_QUIET="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    if backend == "jax":
        # most of a JAX check is XLA compiling each weight shape's initializer (overwritten by the
        # load): unoptimised CPU code compiles ~2.5x faster (ENet's build 26 s -> 9 s)
        env.setdefault("JAX_PLATFORMS", "cpu")
        env["XLA_FLAGS"] = " ".join(
            filter(None, [env.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"]))
    done, remaining = {}, list(networks)
    while remaining:
        list_file = os.path.join(workdir, f"{role}_{backend}.networks")
        with open(list_file, "w") as f:
            f.write("\n".join(remaining))
        cmd = [sys.executable, os.path.abspath(__file__), f"--worker={role}",
               f"--results={results}", f"--workdir={workdir}", f"--size={size[0]}x{size[1]}",
               f"--num_classes={num_classes}", f"--networks_file={list_file}",
               f"--train_networks={','.join(train_networks)}"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=log or subprocess.DEVNULL, cwd=REPO)
        reason = None
        while proc.poll() is None:
            time.sleep(0.5)
            events = _read(results)
            if events and events[-1]["event"] == "start":
                if time.time() - events[-1]["time"] > network_timeout:
                    proc.kill()
                    proc.wait()
                    reason = f"timed out after {network_timeout} s"
        events = _read(results)
        for e in events:
            if e["event"] == "done":
                done[e["network"]] = e
        if reason is None and proc.returncode != 0:
            reason = f"worker process died (exit code {proc.returncode})"
        started = [e["network"] for e in events if e["event"] == "start"]
        stuck = [n for n in started if n not in done]
        for n in stuck:
            done[n] = {"network": n, "backend": backend, "built": False,
                       "error": reason or "worker stopped"}
        progressed = [n for n in remaining if n in done]
        remaining = [n for n in remaining if n not in done]
        if remaining and not progressed:  # died before the first network: give up on the rest
            for n in remaining:
                done[n] = {"network": n, "backend": backend, "built": False,
                           "error": reason or "worker stopped"}
            remaining = []
    return done


def check(networks, backends, size, workdir, *, num_classes=19, train_networks=(), atol=1e-4,
          network_timeout=900, log=None):
    """Rows ``{network, backend, built, max_abs_diff, rel_diff, logits_ok, keras_loads, ...}``:
    one TensorFlow row per network, then one per network and backend."""
    ref = run_backend("tensorflow", "reference", networks, workdir, size, num_classes,
                      network_timeout=network_timeout, log=log)
    good = [n for n in networks if ref[n].get("built") and not ref[n].get("error")]
    rows = [dict(ref[n], backend="tensorflow") for n in networks]
    for backend in backends:
        got = run_backend(backend, "check", good, workdir, size, num_classes,
                          [n for n in train_networks if n in good], network_timeout, log)
        for n in networks:
            if n not in got:
                rows.append({"network": n, "backend": backend, "built": False,
                             "error": f"tensorflow reference failed: {ref[n].get('error')}"})
                continue
            rows.append(judge(ref[n], got[n], atol))
    return rows


def judge(ref, got, atol=1e-4):
    """The row of one backend's ``got`` record against TensorFlow's ``ref``: relative differences
    (over ``max(1, max |logit|)``) and ``logits_ok`` (weights and .keras outputs within ``atol``
    of that scale)."""
    row = dict(got)
    scale = max(1.0, ref["logit_scale"])
    row["logit_scale"] = ref["logit_scale"]
    for key, rel in (("max_abs_diff", "rel_diff"), ("keras_diff", "keras_rel_diff")):
        if row.get(key) is not None:
            row[rel] = row[key] / scale
    within = row.get("max_abs_diff") is not None and (
        row["max_abs_diff"] <= atol * scale
        and (row.get("keras_diff") is None or row["keras_diff"] <= atol * scale))
    flips = "PoolSwitches" in ref.get("layers", ()) and row.get("off_fraction") is not None and (
        max(row.get("off_fraction") or 0, row.get("keras_off_fraction") or 0)
        <= SWITCH_FLIP_FRACTION)
    row["logits_ok"] = bool(within or flips)
    if flips and not within:
        row["note"] = (f"max-unpool switch flips: {row['off_fraction']:.2%} of values off "
                       "(near-tied 2x2 windows)")
    return row


def row_ok(row):
    """A backend row passes: built, same logits, .keras loads, training (if run) fine."""
    return bool(row.get("logits_ok") and row.get("keras_loads")
                and row.get("train", {"ok": True})["ok"] and not row.get("error"))


def markdown(rows):
    def num(v):
        return "" if v is None else f"{v:.1e}"

    def yes(v):
        return "" if v is None else ("yes" if v else "**no**")

    lines = ["| network | backend | built | max abs diff | rel. diff | .keras loads | train step "
             "| error |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["backend"] == "tensorflow":
            continue
        train = r.get("train")
        train = "" if train is None else (f"loss {train['loss']:.3f}" if train.get("ok")
                                          else "**failed**")
        lines.append(
            f"| {r['network']} | {r['backend']} | {yes(r.get('built'))} | "
            f"{num(r.get('max_abs_diff'))} | {num(r.get('rel_diff'))} | "
            f"{yes(r.get('keras_loads'))} | {train} | "
            f"{(r.get('error') or r.get('note') or '').replace('|', '/')} |")
    return "\n".join(lines)


def summary(rows):
    """Per backend: how many networks pass, and the largest differences."""
    out = []
    for backend in sorted({r["backend"] for r in rows} - {"tensorflow"}):
        mine = [r for r in rows if r["backend"] == backend]
        diffs = [r["max_abs_diff"] for r in mine if r.get("max_abs_diff") is not None]
        rels = [r["rel_diff"] for r in mine if r.get("rel_diff") is not None]
        trains = [r["train"] for r in mine if r.get("train")]
        out.append(
            f"{backend}: {sum(map(row_ok, mine))}/{len(mine)} pass; built "
            f"{sum(bool(r.get('built')) for r in mine)}, .keras loads "
            f"{sum(bool(r.get('keras_loads')) for r in mine)}, largest max|diff| "
            f"{max(diffs, default=float('nan')):.1e} "
            f"(relative {max(rels, default=float('nan')):.1e})"
            f", training steps {sum(t['ok'] for t in trains)}/{len(trains)}")
    return "\n".join(out)


def main(argv):
    del argv
    size = tuple(int(v) for v in FLAGS.size.lower().split("x"))
    if FLAGS.worker:
        with open(FLAGS.networks_file) as f:
            networks = [line.strip() for line in f if line.strip()]
        run_worker(FLAGS.worker, networks, FLAGS.workdir, size, FLAGS.num_classes,
                   set(FLAGS.train_networks), FLAGS.results)
        return
    if FLAGS.networks:
        networks = FLAGS.networks
    else:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        networks = every_network()
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="tfseg_backends_")
    os.makedirs(workdir, exist_ok=True)
    t = time.time()
    with open(os.path.join(workdir, "workers.log"), "w") as log:
        rows = check(networks, FLAGS.backends, size, workdir, num_classes=FLAGS.num_classes,
                     train_networks=[n for n in FLAGS.train_networks if n],
                     atol=FLAGS.atol, network_timeout=FLAGS.network_timeout, log=log)
    table = markdown(rows)
    print(table)
    print()
    print(summary(rows))
    print(f"{len(networks)} networks at {size[0]}x{size[1]} in {time.time() - t:.0f} s "
          f"(workdir {workdir}, worker log workers.log)")
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump({"size": list(size), "networks": networks, "rows": rows}, f, indent=1)
    if FLAGS.markdown:
        with open(FLAGS.markdown, "w") as f:
            f.write(table + "\n\n" + summary(rows) + "\n")
    bad = [r for r in rows if r["backend"] != "tensorflow" and not row_ok(r)]
    sys.exit(1 if bad else 0)


flags.DEFINE_string("networks_file", None, "internal: the worker's network list")

if __name__ == "__main__":
    app.run(main)
