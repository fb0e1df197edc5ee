"""onnxruntime session settings on tfseg's ONNX exports (fp32 and int8 QDQ), timed interleaved
(issue 22, "onnxruntime's graph optimisation level and threading settings"):

    PYTHONPATH=. python experiments/ort_settings.py --networks=fastscnn,ddrnet,erfnet \
        --input_size=512x1024 --threads=2 --json=/tmp/ort_settings.json

Per network: the opset-17 ONNX of ``tfseg.export`` (and its int8 QDQ version, calibrated on random
inputs: speed only), each in one session per setting: graph optimisation level ALL (onnxruntime's
default), EXTENDED, BASIC, and ALL without intra-op thread spinning. Random weights, batch 1; the
median of ``--rounds`` alternating rounds.
"""

import json

import numpy as np
from absl import app, flags

flags.DEFINE_list("networks", ["fastscnn", "ddrnet", "erfnet"], "tfseg networks.")
flags.DEFINE_string("input_size", "512x1024", "HxW.")
flags.DEFINE_integer("threads", 2, "intra-op threads of every session.")
flags.DEFINE_integer("rounds", 10, "timed rounds.")
flags.DEFINE_string("json", None, "write the medians here.")
FLAGS = flags.FLAGS


def session(data, level, threads, spin=None):
    """A ``x -> logits`` callable of one onnxruntime session with these settings."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = threads, 1
    o.graph_optimization_level = level
    if spin is not None:
        o.add_session_config_entry("session.intra_op.allow_spinning", spin)
    s = ort.InferenceSession(data, o, providers=["CPUExecutionProvider"])
    name, out = s.get_inputs()[0].name, s.get_outputs()[0].name
    return lambda x: s.run([out], {name: x})[0]


def main(argv):
    del argv
    import onnxruntime as ort

    import tfseg
    from tfseg.arrays import parse_size
    from tfseg.bench.runtimes import export_copy
    from tfseg.cpuinfo import cpu_description
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx
    from tfseg.files import write_json_atomic
    from tfseg.timing import latency_stats, time_interleaved

    size = parse_size(FLAGS.input_size, "--input_size")
    level = ort.GraphOptimizationLevel
    variants = {
        "all (default)": dict(level=level.ORT_ENABLE_ALL),
        "all, no spinning": dict(level=level.ORT_ENABLE_ALL, spin="0"),
        "extended": dict(level=level.ORT_ENABLE_EXTENDED),
        "basic": dict(level=level.ORT_ENABLE_BASIC),
    }
    doc = {"cpu": cpu_description(), "onnxruntime": ort.__version__, "threads": FLAGS.threads,
           "input_size": FLAGS.input_size, "median_ms": {}}
    print(doc["cpu"], "onnxruntime", ort.__version__)
    for net in FLAGS.networks:
        model = tfseg.build_model(net, 19, input_shape=(*size, 3))
        proto = convert_onnx(export_copy(model, {}, "onnx"), opset=17, input_shape=(1, *size))
        rng = np.random.default_rng(0)
        rep = [rng.standard_normal((1, *size, 3), dtype=np.float32) for _ in range(4)]
        runners = {}
        for precision, p in (("fp32", proto), ("int8", quantize_onnx(proto, rep))):
            data = p if isinstance(p, bytes) else p.SerializeToString()
            for key, kw in variants.items():
                runners[f"{precision} {key}"] = session(data, threads=FLAGS.threads, **kw)
        times = time_interleaved(runners, rep[0], warmup=2, runs=FLAGS.rounds)
        doc["median_ms"][net] = {k: latency_stats(v)["median_ms"] for k, v in times.items()}
        print(net, json.dumps({k: round(v, 1) for k, v in doc["median_ms"][net].items()}))
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    app.run(main)
