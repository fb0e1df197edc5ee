"""OpenVINO on the two layouts of tfseg's ONNX upsamplings (issue 22, session 27).

The ONNX export for onnxruntime moves each bilinear / nearest upsampling into NHWC with a
Transpose on each side (``onnx_layout.nhwc_upsamplings``: faster in onnxruntime); TensorRT targets
keep tf2onnx's NCHW Resize. This times OpenVINO's CPU plugin (fp32) on both forms, with
onnxruntime on its own form as the yardstick, interleaved, per network (random weights, BN
statistics from the 4 calibration inputs, batch 1):

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/openvino_layouts.py \
        --networks=ddrnet,cgnet,contextnet --json=docs/openvino_layouts_avx2.json

``--format=openvino`` and the ``openvino*`` benchmark runtimes use the NCHW form since this run.

``--forms=graph`` (session 28): OpenVINO fp32 and int8 (NNCF, calibrated on the same 4 inputs) on
the ONNX graph as tf2onnx and tfseg's layout passes write it against the same graph after
onnxruntime's basic graph optimizations (``openvino_export.ort_basic_optimized``, which removes
the layout transposes that tf2onnx leaves), with the Transpose count of each:

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/openvino_layouts.py \
        --forms=graph --networks=cgnet,regseg,lite_hrnet,aglnet,lednet \
        --json=docs/openvino_graph_avx2.json

``--forms=expand_depthwise`` (session 28): OpenVINO int8 and fp32 with depthwise convolutions of
channel multiplier m as one grouped convolution against a 0/1 1x1 expansion and a multiplier-1
depthwise convolution (``graph._ExpandedDepthwiseConv2D``; now for ``--format=openvino
--precision=int8``):

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/openvino_layouts.py \
        --forms=expand_depthwise --networks=dfanet,bisenetv2 \
        --json=docs/openvino_expand_depthwise_avx2.json

``--forms=downsampler`` (session 29): OpenVINO fp32 and int8 with the downsamplers on the
3-channel input (concatenation of a convolution and a max pooling) as they are and as additions
(``onnx_layout.pool_concat_adds``), and in int8 also with the channel shuffles as 1x1
permutation convolutions (``graph._ConvChannelShuffle``); both are now in ``--format=openvino``:

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/openvino_layouts.py \
        --forms=downsampler --networks=lednet,aglnet,lite_hrnet,erfnet,enet \
        --json=docs/openvino_downsampler_avx2.json
"""

import json

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    flags.DEFINE_list("networks", ["ddrnet"], "zoo networks", flag_values=fv)
    flags.DEFINE_string("input_size", "512x1024", "HxW", flag_values=fv)
    flags.DEFINE_integer("threads", 2, "CPU threads of both runtimes", flag_values=fv)
    flags.DEFINE_integer("rounds", 6, "timed rounds", flag_values=fv)
    flags.DEFINE_enum("forms", "resize", ["resize", "graph", "expand_depthwise", "downsampler"],
                      "resize: the upsamplings' layout (fp32); graph: without and with "
                      "onnxruntime's basic graph optimizations (fp32 and int8); expand_depthwise: "
                      "multiplier depthwise convolutions without and with the expansion (int8 "
                      "and fp32)", flag_values=fv)
    flags.DEFINE_string("json", None, "write the medians here", flag_values=fv)


def measure(name, size, threads, rounds, forms="resize"):
    """``{form: median ms}`` for one network (``forms="graph"``: and the Transpose counts)."""
    import numpy as np

    import tfseg
    from tfseg.arrays import padded_size
    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.models import stride_of
    from tfseg.models.batchnorm import recalibrate_batchnorm

    size = padded_size(size, stride_of(name))
    model = tfseg.build_model(name, 19, input_shape=(*size, 3))
    recalibrate_batchnorm(model, [np.concatenate(calibration_inputs(size))])
    folded = export_copy(model, {}, "openvino", "fp32")
    if forms == "graph":
        return _graph_forms(model, folded, size, threads, rounds)
    if forms == "expand_depthwise":
        return _expand_forms(model, size, threads, rounds)
    if forms == "downsampler":
        return _downsampler_forms(model, size, threads, rounds)
    x = calibration_inputs(size, 1)[0]
    runners = {}
    for label, nhwc in (("openvino_nhwc_resize", True), ("openvino_nchw_resize", False)):
        proto = convert_onnx(folded, opset=17, input_shape=(1, *size), nhwc_upsamplings=nhwc)
        run = ovx.OpenVINORunner(ovx.from_onnx(proto, optimize=False), threads=threads)
        runners[label] = lambda run=run: run(x)
        if nhwc:
            ort = OnnxRunner(proto, threads=threads)
            runners["onnxruntime_nhwc_resize"] = lambda ort=ort: ort(x)
    return _medians(runners, rounds)


def _graph_forms(model, folded, size, threads, rounds):
    import os
    import shutil
    import tempfile

    import onnx

    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import convert_onnx

    cal = calibration_inputs(size)
    row, runners = {}, {}
    for precision in ("fp32", "int8"):
        copy = folded if precision == "fp32" else export_copy(model, {}, "openvino", "int8")
        proto = convert_onnx(copy, opset=17, input_shape=(1, *size), nhwc_upsamplings=False)
        if precision == "fp32":  # the Transpose count of each form
            work = tempfile.mkdtemp()
            try:
                src = os.path.join(work, "in.onnx")
                onnx.save(proto, src)
                out = ovx.ort_basic_optimized(src, os.path.join(work, "out.onnx"))
                for form, path in (("tf2onnx", src), ("ort_basic", out)):
                    row[f"{form}_transposes"] = sum(
                        n.op_type == "Transpose" for n in onnx.load(path).graph.node)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        for form, optimize in (("tf2onnx", False), ("ort_basic", True)):
            runners[f"openvino_{precision}_{form}"] = _runner(
                ovx.from_onnx(proto, optimize=optimize), precision, cal, threads)
    row.update(_medians(runners, rounds))
    return row


def _runner(ov_model, precision, cal, threads):
    """A no-argument callable running ``ov_model`` (quantized on ``cal`` for int8) on ``cal[0]``."""
    from tfseg.export_lib import openvino_export as ovx

    if precision == "int8":
        ov_model = ovx.quantize(ov_model, cal)
    run = ovx.OpenVINORunner(ov_model, threads=threads)
    return lambda: run(cal[0])


def _medians(runners, rounds):
    """``{name: median ms}`` of ``runners`` timed in interleaved rounds."""
    import keras
    import numpy as np

    from tfseg.timing import time_interleaved

    times = time_interleaved(runners, warmup=2, runs=rounds)
    keras.backend.clear_session()
    return {k: round(1e3 * float(np.median(v)), 1) for k, v in times.items()}


def _expand_forms(model, size, threads, rounds):
    from tfseg.bench.runtimes import calibration_inputs
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.pipeline import rewrites

    cal = calibration_inputs(size)
    runners = {}
    for precision in ("int8", "fp32"):
        for form, on in (("multiplier", False), ("expanded", True)):
            kw = {**rewrites("openvino", precision), "expand_depthwise": on}
            proto = convert_onnx(inference_model(model, **kw)[0], opset=17,
                                 input_shape=(1, *size), nhwc_upsamplings=False)  # fmt: skip
            runners[f"openvino_{precision}_{form}"] = _runner(
                ovx.from_onnx(proto), precision, cal, threads)
    return _medians(runners, rounds)


def _downsampler_forms(model, size, threads, rounds):
    """OpenVINO fp32 / int8 with the downsamplers on the 3-channel input as concatenations or
    as additions (``onnx_layout.pool_concat_adds``), and in int8 also with the channel shuffles as
    permutation convolutions (``graph._ConvChannelShuffle``)."""
    from tfseg.bench.runtimes import calibration_inputs
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.export_lib.pipeline import rewrites

    cal = calibration_inputs(size)
    runners = {}
    for precision in ("fp32", "int8"):
        forms = [("concat", False, False), ("add", True, False)]
        if precision == "int8":
            forms.append(("add_shuffle_conv", True, True))
        for form, adds, shuffle_conv in forms:
            kw = {**rewrites("openvino", precision), "shuffle_as_conv": shuffle_conv}
            proto = convert_onnx(inference_model(model, **kw)[0], opset=17,
                                 input_shape=(1, *size), nhwc_upsamplings=False)  # fmt: skip
            runners[f"openvino_{precision}_{form}"] = _runner(
                ovx.from_onnx(proto, pool_concats_as_adds=adds), precision, cal, threads)
    return _medians(runners, rounds)


def main(argv):
    del argv
    from tfseg.config import parse_size
    from tfseg.cpuinfo import cpu_description
    from tfseg.files import write_json_atomic

    size = parse_size(FLAGS.input_size, "--input_size")
    doc = {"cpu": cpu_description(), "threads": FLAGS.threads, "input_size": FLAGS.input_size,
           "rounds": FLAGS.rounds, "forms": FLAGS.forms, "rows": {}}  # fmt: skip
    if FLAGS.forms != "resize":
        import onnxruntime
        import openvino

        doc["versions"] = {"onnxruntime": onnxruntime.__version__,
                           "openvino": openvino.__version__}  # fmt: skip
    for name in FLAGS.networks:
        doc["rows"][name] = measure(name, size, FLAGS.threads, FLAGS.rounds, FLAGS.forms)
        print(name, json.dumps(doc["rows"][name]), flush=True)
        if FLAGS.json:
            write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    define_flags()
    app.run(main)
