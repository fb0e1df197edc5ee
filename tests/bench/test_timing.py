"""tfseg.timing: call order and counts of the interleaved timing, the latency statistics,
and the export library's independence of the benchmark (no speed is asserted)."""

import ast
import pathlib

import pytest

from tfseg import timing


def test_time_interleaved_warms_up_then_alternates():
    calls = []
    runners = {"a": lambda x: calls.append(("a", x)), "b": lambda x: calls.append(("b", x))}
    times = timing.time_interleaved(runners, 7, warmup=2, runs=3, settle_s=0)
    assert calls == [("a", 7)] * 2 + [("b", 7)] * 2 + [("a", 7), ("b", 7)] * 3
    assert list(times) == ["a", "b"] and all(len(t) == 3 and min(t) >= 0 for t in times.values())


def test_time_interleaved_settles_each_runner_before_its_timed_call(monkeypatch):
    """Untimed calls of the same runner for settle_s right before each timed one; only the last
    call of each group is timed."""
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls = []

    def runner(name, seconds):
        def fn():
            calls.append(name)
            clock[0] += seconds
        return fn

    runners = {"a": runner("a", 0.04), "b": runner("b", 0.25)}
    times = timing.time_interleaved(runners, warmup=1, runs=2, settle_s=0.1)
    # a: 0.04 s per call, so three settling calls reach 0.1 s; b settles with one call.
    assert calls == ["a", "b"] + (["a"] * 3 + ["a"] + ["b"] + ["b"]) * 2
    assert times == {"a": [pytest.approx(0.04)] * 2, "b": [pytest.approx(0.25)] * 2}
    # One runner alone needs no settling: nothing ran before it.
    calls.clear()
    timing.time_interleaved({"a": runners["a"]}, warmup=1, runs=2, settle_s=0.1)
    assert calls == ["a"] * 3


def test_time_interleaved_without_arguments_warms_up_at_least_once():
    calls = []
    times = timing.time_interleaved({"k": lambda: calls.append(1)}, warmup=0, runs=2)
    assert len(calls) == 3 and len(times["k"]) == 2


def test_latency_stats():
    stats = timing.latency_stats([0.001, 0.002, 0.003, 0.004])
    assert stats["median_ms"] == pytest.approx(2.5) and stats["fps"] == pytest.approx(400.0)
    assert stats["p90_ms"] == pytest.approx(3.7) and stats["runs"] == 4
    assert list(stats) == ["median_ms", "p90_ms", "fps", "runs"]


def test_export_lib_does_not_import_the_benchmark():
    """bench builds on export_lib, never the other way round."""
    root = pathlib.Path(timing.__file__).parent / "export_lib"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            bad = [n for n in names if n.startswith(("tfseg.bench", "tfseg.benchmark"))]
            assert not bad, f"{path.name} imports {bad}"
