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

``--forms=rewrites`` times other forms instead (session 26; ``op_breakdown.py`` found where
onnxruntime's int8 kernels are slower than fp32): the export copy rewritten in Keras before
the conversion, as for int8 LiteRT (``graph.inference_model``): depthwise convolutions with a
channel multiplier as a 0/1 1x1 convolution + a multiplier-1 depthwise one
(``expand_depthwise``); average poolings as depthwise convolutions of constant weights
(``avg_pool_as_conv``, ``same_pool_as_conv``), the two ``rewrites("onnx", "int8")`` has
since; and, at quantization, the max pooling and concatenation of ENet's / ERFNet's downsampler
left in float (``quantize_onnx(float_pool_concats=True)``, not the default); each alone on
session 25's export and all three together, against fp32. ``--forms=pool_concats``: the export's
int8 with and without that last one. ``--forms=shuffles`` (session 29): the export's int8 with its
channel shuffles as transposes and as 1x1 permutation convolutions:

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/ort_int8_forms.py \
        --forms=shuffles --networks=lednet,aglnet,lite_hrnet --json=docs/ort_int8_shuffles_avx2.json
"""

import json

from absl import app, flags

flags.DEFINE_list("networks", ["swiftnet", "stdc", "adscnet", "lednet", "fddwnet"],
                  "tfseg networks.")
flags.DEFINE_string("input_size", "512x1024", "HxW.")
flags.DEFINE_integer("threads", 2, "intra-op threads of every session.")
flags.DEFINE_integer("rounds", 8, "timed rounds.")
flags.DEFINE_enum("forms", "settings", ["settings", "rewrites", "pool_concats", "shuffles"],
                  "settings: quantization settings (session 25); rewrites: graph rewrites "
                  "(session 26); pool_concats: the export's int8 with and without the "
                  "downsampler's max pooling and concatenation in float; shuffles: channel "
                  "shuffles as transposes or as permutation convolutions (session 29).")
flags.DEFINE_string("json", None, "write the medians here.")
FLAGS = flags.FLAGS


def depthwise_convs(proto):
    """Names of the grouped Conv nodes (tfseg's depthwise convolutions) of an ONNX model."""
    return [n.name for n in proto.graph.node if n.op_type == "Conv"
            and any(a.name == "group" and a.i > 1 for a in n.attribute)]


def rewritten_proto(model, size, **extra):
    """The fp32 ONNX of ``model``'s ONNX export copy with ``extra`` rewrites
    (``graph.inference_model`` keywords) on top of the export's own."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.pipeline import rewrites

    copy, _ = inference_model(model, **{**rewrites("onnx"), **extra})
    return convert_onnx(copy, opset=17, input_shape=(1, *size))


def rewrite_forms(model, proto, size, cal):
    """{label: ONNX} of the ``--forms=rewrites`` set."""
    from tfseg.export_lib.onnx_int8 import quantize_onnx

    pools = {"avg_pool_as_conv": True, "same_pool_as_conv": True}
    return {
        "fp32": proto,
        "int8, session 25 export": quantize_onnx(proto, cal),
        "int8, expanded depthwise": quantize_onnx(
            rewritten_proto(model, size, expand_depthwise=True), cal),
        "int8, pools as depthwise": quantize_onnx(rewritten_proto(model, size, **pools), cal),
        "int8, downsampler pool + concat in float": quantize_onnx(proto, cal,
                                                                  float_pool_concats=True),
        "int8, all three": quantize_onnx(
            rewritten_proto(model, size, expand_depthwise=True, **pools), cal,
            float_pool_concats=True),
    }


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


def settings_forms(model, proto, size, cal):
    """{label: ONNX} of the ``--forms=settings`` set (session 25)."""
    from onnxruntime.quantization import QuantFormat, QuantType

    from tfseg.export_lib.onnx_int8 import quantize_onnx

    del model, size
    return {
        "fp32": proto,
        "int8 (tfseg: QDQ U8S8)": quantize_onnx(proto, cal),
        "int8 S8S8": quantized_with(proto, cal, activation_type=QuantType.QInt8),
        "int8 QOperator": quantized_with(proto, cal, quant_format=QuantFormat.QOperator),
        "int8 7-bit weights": quantized_with(proto, cal, reduce_range=True),
        "int8 8-bit weights": quantized_with(proto, cal, reduce_range=False),
        "int8, depthwise in float": quantized_with(proto, cal,
                                                   nodes_to_exclude=depthwise_convs(proto)),
    }


def pool_concat_forms(model, proto, size, cal):
    """{label: ONNX} of the ``--forms=pool_concats`` set: the export's int8 copy with and without
    ``onnx_int8.pool_concats`` in float."""
    from tfseg.bench.runtimes import export_copy
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx

    copy = convert_onnx(export_copy(model, {}, "onnx", "int8"), opset=17,
                        input_shape=(1, *size))
    return {"fp32": proto,
            "int8, downsampler pool + concat int8": quantize_onnx(copy, cal),
            "int8, downsampler pool + concat float": quantize_onnx(copy, cal,
                                                                   float_pool_concats=True)}


def shuffle_forms(model, proto, size, cal):
    """{label: ONNX} of the ``--forms=shuffles`` set (session 29): the export's int8 copy with its
    channel shuffles as reshape -> transpose -> reshape and as 1x1 permutation convolutions
    (``graph._ConvChannelShuffle``, the export's form since)."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx
    from tfseg.export_lib.pipeline import rewrites

    forms = {"fp32": proto}
    for label, on in (("transpose", False), ("permutation conv", True)):
        copy, _ = inference_model(model, **{**rewrites("onnx", "int8"), "shuffle_as_conv": on})
        forms[f"int8, shuffles as {label}"] = quantize_onnx(
            convert_onnx(copy, opset=17, input_shape=(1, *size)), cal)
    return forms


FORMS = {"settings": settings_forms, "rewrites": rewrite_forms, "pool_concats": pool_concat_forms,
         "shuffles": shuffle_forms}


def main(argv):
    del argv
    import onnxruntime as ort

    from tfseg.arrays import parse_size
    from tfseg.bench.measure import _model_at
    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.cpuinfo import cpu_description
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.onnx_int8 import has_int8_dot_product
    from tfseg.files import write_json_atomic
    from tfseg.timing import latency_stats, time_interleaved

    size = parse_size(FLAGS.input_size, "--input_size")
    doc = {"cpu": cpu_description(), "onnxruntime": ort.__version__, "threads": FLAGS.threads,
           "input_size": FLAGS.input_size, "rounds": FLAGS.rounds,
           "export_reduce_range": not has_int8_dot_product(), "forms": FLAGS.forms,
           "median_ms": {}}
    print(doc["cpu"], "onnxruntime", ort.__version__)
    for net in FLAGS.networks:
        model, run_size = _model_at(net, None, 19, size, None, None, True)
        proto = convert_onnx(export_copy(model, {}, "onnx"), opset=17, input_shape=(1, *run_size))
        cal = calibration_inputs(run_size)
        forms = FORMS[FLAGS.forms](model, proto, run_size, cal)
        runners = {k: OnnxRunner(v, threads=FLAGS.threads) for k, v in forms.items()}
        times = time_interleaved(runners, cal[0], warmup=2, runs=FLAGS.rounds)
        doc["median_ms"][net] = {k: latency_stats(v)["median_ms"] for k, v in times.items()}
        print(net, json.dumps({k: round(v, 1) for k, v in doc["median_ms"][net].items()}),
              flush=True)
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    app.run(main)
