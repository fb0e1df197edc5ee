"""Every timing helper of tfseg, in one place: the benchmark (``tfseg.bench``), the automatic
export choice (``tfseg.export_lib.auto``) and the experiments all time with it. It sits at the
top of the package, so that export_lib never imports the benchmark.

- ``time_interleaved``: warm every runner up, then time them round-robin (one call of each per
  round), so that load from other processes on a shared machine hits all of them alike;
- ``latency_stats``: median / p90 ms and FPS of a list of durations;
- ``matmul_gflops``: this machine's fp32 matrix-multiply throughput, the reference that achieved
  GFLOP/s are compared with.

The module itself imports only numpy (TensorFlow where it is used).
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


def time_interleaved(runners, *args, warmup, runs):
    """``{name: [seconds] * runs}``: every runner warmed up, then timed round-robin, one call of
    each per round, so that load from other processes on a shared machine hits all runtimes alike.

    Each runner is called as ``fn(*args)`` (the benchmark passes one input array; the kernel table
    passes nothing).
    """
    warm_up(runners, *args, warmup=warmup)
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, fn in runners.items():
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


def matmul_gflops(sizes=(1024, 2048), repeats=3):
    """Best fp32 GFLOP/s of a square matmul on this machine:
    ``{"numpy": .., "tensorflow": .., "best": ..}``.

    numpy uses its BLAS with all its threads; TF uses the configured intra-op threads.
    """
    import tensorflow as tf

    result = {"numpy": 0.0, "tensorflow": 0.0}
    rng = np.random.default_rng(0)
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        ta, tb = tf.constant(a), tf.constant(b)
        tf_matmul = tf.function(tf.matmul)
        flops = 2.0 * n**3
        numpy_gflops = best_gflops(lambda: a @ b, flops, repeats)  # noqa: B023
        result["numpy"] = max(result["numpy"], numpy_gflops)
        result["tensorflow"] = max(
            result["tensorflow"],
            best_gflops(lambda: tf_matmul(ta, tb).numpy(), flops, repeats),  # noqa: B023
        )
    result["best"] = max(result["numpy"], result["tensorflow"])
    return result
