"""Forms of onnxruntime's int8 quantization on tfseg's ONNX exports, timed interleaved against
each other and fp32 (issue 22: which int8 form pays on a CPU without VNNI):

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/ort_int8_forms.py \
        --networks=swiftnet,stdc,adscnet,lednet,fddwnet --json=docs/ort_int8_forms_avx2.json

Per network (random weights with BN statistics from the calibration inputs, as tfseg.benchmark
builds it; 4 random-normal calibration inputs: speed only): the fp32 ONNX, tfseg's int8 export
(``export_lib.onnx_int8``: QDQ, uint8 activations, int8 weights per channel, 7-bit weights where
the CPU has no VNNI), and that export with one setting changed: signed int8 activations (S8S8),
the QOperator format, 7-bit and 8-bit weights on every CPU (one of the two is the export's own
choice), depthwise convolutions left in float. The median
of ``--rounds`` alternating rounds; the CPU line names a CPUID profile where one is in force.
"""

import json

from absl import app, flags

flags.DEFINE_list("networks", ["swiftnet", "stdc", "adscnet", "lednet", "fddwnet"],
                  "tfseg networks.")
flags.DEFINE_string("input_size", "512x1024", "HxW.")
flags.DEFINE_integer("threads", 2, "intra-op threads of every session.")
flags.DEFINE_integer("rounds", 8, "timed rounds.")
flags.DEFINE_string("json", None, "write the medians here.")
FLAGS = flags.FLAGS


def depthwise_convs(proto):
    """Names of the grouped Conv nodes (tfseg's depthwise convolutions) of an ONNX model."""
    return [n.name for n in proto.graph.node if n.op_type == "Conv"
            and any(a.name == "group" and a.i > 1 for a in n.attribute)]


def quantized_with(proto, calibration, **changes):
    """tfseg's int8 ONNX of ``proto`` with ``changes`` passed on to onnxruntime's
    ``quantize_static`` (``nodes_to_exclude`` added to the export's own)."""
    import onnxruntime.quantization as quantization

    from tfseg.export_lib.onnx_int8 import quantize_onnx

    original = quantization.quantize_static

    def changed(*args, **kwargs):
        extra = dict(changes)
        kwargs["nodes_to_exclude"] = (list(kwargs.get("nodes_to_exclude", []))
                                      + extra.pop("nodes_to_exclude", []))
        kwargs.update(extra)
        return original(*args, **kwargs)

    quantization.quantize_static = changed  # quantize_onnx imports it at call time
    try:
        return quantize_onnx(proto, calibration)
    finally:
        quantization.quantize_static = original


def main(argv):
    del argv
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType

    from tfseg.arrays import parse_size
    from tfseg.bench.measure import _model_at
    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.cpuinfo import cpu_description
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.onnx_int8 import has_int8_dot_product, quantize_onnx
    from tfseg.files import write_json_atomic
    from tfseg.timing import latency_stats, time_interleaved

    size = parse_size(FLAGS.input_size, "--input_size")
    doc = {"cpu": cpu_description(), "onnxruntime": ort.__version__, "threads": FLAGS.threads,
           "input_size": FLAGS.input_size, "rounds": FLAGS.rounds,
           "export_reduce_range": not has_int8_dot_product(), "median_ms": {}}
    print(doc["cpu"], "onnxruntime", ort.__version__)
    for net in FLAGS.networks:
        model, run_size = _model_at(net, None, 19, size, None, None, True)
        proto = convert_onnx(export_copy(model, {}, "onnx"), opset=17, input_shape=(1, *run_size))
        cal = calibration_inputs(run_size)
        forms = {
            "fp32": proto,
            "int8 (tfseg: QDQ U8S8)": quantize_onnx(proto, cal),
            "int8 S8S8": quantized_with(proto, cal, activation_type=QuantType.QInt8),
            "int8 QOperator": quantized_with(proto, cal, quant_format=QuantFormat.QOperator),
            "int8 7-bit weights": quantized_with(proto, cal, reduce_range=True),
            "int8 8-bit weights": quantized_with(proto, cal, reduce_range=False),
            "int8, depthwise in float": quantized_with(proto, cal,
                                                       nodes_to_exclude=depthwise_convs(proto)),
        }
        runners = {k: OnnxRunner(v, threads=FLAGS.threads) for k, v in forms.items()}
        times = time_interleaved(runners, cal[0], warmup=2, runs=FLAGS.rounds)
        doc["median_ms"][net] = {k: latency_stats(v)["median_ms"] for k, v in times.items()}
        print(net, json.dumps({k: round(v, 1) for k, v in doc["median_ms"][net].items()}),
              flush=True)
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    app.run(main)
