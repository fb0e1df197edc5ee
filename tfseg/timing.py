"""Every timing helper of tfseg, in one place: the benchmark (``tfseg.bench``), the automatic
export choice (``tfseg.export_lib.auto``) and the experiments all time with it. It sits at the
top of the package, so that export_lib never imports the benchmark.

- ``time_interleaved``: warm every runner up, then time them round-robin (one timed call of each
  per round, after untimed settling calls of the same runner), so that load from other processes
  on a shared machine hits all of them alike and no runner pays for the threads the previous one
  left spinning;
- ``latency_stats``: median / p90 ms and FPS of a list of durations;
- ``matmul_gflops``: this machine's fp32 matrix-multiply throughput, the reference that achieved
  GFLOP/s are compared with.

The module itself imports only numpy (the Keras backend's own module where it is used).
"""

import time

import numpy as np


def warm_up(runners, *args, warmup):
    """Call every runner in ``runners`` (a dict) ``max(1, warmup)`` times with ``args``, untimed."""
    for fn in runners.values():
        for _ in range(max(1, warmup)):
            fn(*args)


def time_call(fn, *args):
    """Seconds one call ``fn(*args)`` takes (``time.perf_counter``)."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# Seconds of untimed calls a runner makes right before each of its timed calls when several
# runners alternate. Runtimes keep their worker threads spinning after a call (onnxruntime's
# intra-op pool for tens of milliseconds), and on a 2-core machine those threads take the cores
# from whatever runs next: measured on Fast-SCNN at 512x1024 (AMD EPYC Zen 4, 2 threads), the
# tfseg ONNX timed right after another onnxruntime session read 42-50 ms against 24-25 ms alone,
# fp32 LiteRT after it 49-56 against 27-31. With these settling calls each runtime is timed in its
# own steady state, as a model that runs alone (docs/results.md, "Timing several runtimes").
SETTLE_S = 0.2


def time_interleaved(runners, *args, warmup, runs, settle_s=SETTLE_S):
    """``{name: [seconds] * runs}``: every runner warmed up, then timed round-robin, one timed
    call of each per round, so that load from other processes on a shared machine hits all
    runtimes alike.

    With more than one runner, each timed call follows untimed calls of the same runner for at
    least ``settle_s`` seconds (at least one call; ``SETTLE_S``), so that threads the previous
    runner left spinning do not slow it. ``settle_s=0`` turns that off.

    Each runner is called as ``fn(*args)`` (the benchmark passes one input array; the kernel table
    passes nothing).
    """
    warm_up(runners, *args, warmup=warmup)
    settle_s = settle_s if len(runners) > 1 else 0
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, fn in runners.items():
            if settle_s > 0:
                start = time.perf_counter()
                fn(*args)
                while time.perf_counter() - start < settle_s:
                    fn(*args)
            times[name].append(time_call(fn, *args))
    return times


def latency_stats(times):
    """``{"median_ms", "p90_ms", "fps", "runs"}`` of a list of durations in seconds
    (FPS = 1000 / median ms)."""
    ms = np.asarray(times) * 1e3
    med = float(np.median(ms))
    return {
        "median_ms": med,
        "p90_ms": float(np.percentile(ms, 90)),
        "fps": 1e3 / med,
        "runs": len(ms),
    }


def best_gflops(fn, flops, repeats):
    """Best GFLOP/s of ``repeats`` timed calls of ``fn()``, each doing ``flops`` (after one
    untimed call)."""
    fn()
    best = 0.0
    for _ in range(repeats):
        best = max(best, flops / time_call(fn) / 1e9)
    return best


def _backend_matmul(a, b):
    """``(name, fn)``: a timed call of the active Keras backend's compiled fp32 matmul of numpy
    ``a`` and ``b``, waiting for the device (TensorFlow when Keras is absent)."""
    try:
        import keras

        name = keras.backend.backend()
    except ImportError:
        name = "tensorflow"
    if name == "jax":
        import jax

        ja, jb = jax.device_put(a), jax.device_put(b)
        f = jax.jit(lambda x, y: x @ y)
        return name, lambda: jax.block_until_ready(f(ja, jb))
    if name == "torch":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        ta, tb = torch.as_tensor(a, device=device), torch.as_tensor(b, device=device)

        def run():
            out = ta @ tb
            if device == "cuda":
                torch.cuda.synchronize()
            return out

        return name, run
    import tensorflow as tf

    ta, tb = tf.constant(a), tf.constant(b)
    tf_matmul = tf.function(tf.matmul)
    return "tensorflow", lambda: tf_matmul(ta, tb).numpy()


def matmul_gflops(sizes=(1024, 2048), repeats=3):
    """Best fp32 GFLOP/s of a square matmul on this machine:
    ``{"numpy": .., "<backend>": .., "best": ..}``.

    numpy uses its BLAS with all its threads; the Keras backend (TensorFlow, JAX or PyTorch) its
    configured threads, or its GPU when it computes on one.
    """
    result = {"numpy": 0.0}
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        name, run = _backend_matmul(a, b)
        flops = 2.0 * n**3
        result["numpy"] = max(result["numpy"], best_gflops(lambda: a @ b, flops, repeats))  # noqa: B023
        result[name] = max(result.get(name, 0.0), best_gflops(run, flops, repeats))
    result["best"] = max(result.values())
    return result
