"""OpenVINO on the two layouts of tfseg's ONNX upsamplings (issue 22, session 27).

The ONNX export for onnxruntime moves each bilinear / nearest upsampling into NHWC with a
Transpose on each side (``onnx_layout.nhwc_upsamplings``: faster in onnxruntime); TensorRT targets
keep tf2onnx's NCHW Resize. This times OpenVINO's CPU plugin (fp32) on both forms, with
onnxruntime on its own form as the yardstick, interleaved, per network (random weights, BN
statistics from the 4 calibration inputs, batch 1):

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/openvino_layouts.py \
        --networks=ddrnet,cgnet,contextnet --json=docs/openvino_layouts_avx2.json

``--format=openvino`` and the ``openvino*`` benchmark runtimes use the NCHW form since this run.
"""

import json

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    flags.DEFINE_list("networks", ["ddrnet"], "zoo networks", flag_values=fv)
    flags.DEFINE_string("input_size", "512x1024", "HxW", flag_values=fv)
    flags.DEFINE_integer("threads", 2, "CPU threads of both runtimes", flag_values=fv)
    flags.DEFINE_integer("rounds", 6, "timed rounds", flag_values=fv)
    flags.DEFINE_string("json", None, "write the medians here", flag_values=fv)


def measure(name, size, threads, rounds):
    """``{form: median ms}`` for one network."""
    import keras
    import numpy as np

    import tfseg
    from tfseg.arrays import padded_size
    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.models import stride_of
    from tfseg.models.batchnorm import recalibrate_batchnorm
    from tfseg.timing import time_interleaved

    size = padded_size(size, stride_of(name))
    model = tfseg.build_model(name, 19, input_shape=(*size, 3))
    recalibrate_batchnorm(model, [np.concatenate(calibration_inputs(size))])
    folded = export_copy(model, {}, "openvino", "fp32")
    x = calibration_inputs(size, 1)[0]
    runners = {}
    for label, nhwc in (("openvino_nhwc_resize", True), ("openvino_nchw_resize", False)):
        proto = convert_onnx(folded, opset=17, input_shape=(1, *size), nhwc_upsamplings=nhwc)
        run = ovx.OpenVINORunner(ovx.from_onnx(proto), threads=threads)
        runners[label] = lambda run=run: run(x)
        if nhwc:
            ort = OnnxRunner(proto, threads=threads)
            runners["onnxruntime_nhwc_resize"] = lambda ort=ort: ort(x)
    times = time_interleaved(runners, warmup=2, runs=rounds)
    keras.backend.clear_session()
    return {k: round(1e3 * float(np.median(v)), 1) for k, v in times.items()}


def main(argv):
    del argv
    from tfseg.config import parse_size
    from tfseg.cpuinfo import cpu_description
    from tfseg.files import write_json_atomic

    size = parse_size(FLAGS.input_size, "--input_size")
    doc = {"cpu": cpu_description(), "threads": FLAGS.threads, "input_size": FLAGS.input_size,
           "rounds": FLAGS.rounds, "rows": {}}  # fmt: skip
    for name in FLAGS.networks:
        doc["rows"][name] = measure(name, size, FLAGS.threads, FLAGS.rounds)
        print(name, json.dumps(doc["rows"][name]), flush=True)
        if FLAGS.json:
            write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    define_flags()
    app.run(main)
