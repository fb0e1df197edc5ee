"""How much of a network's CPU latency is its last step, the upsampling to full-size float logits
and their copy out of the runtime, and so how far below the reference's ONNX any body could take
tfseg (issue 22: the rows short of 2x in docs/zoo.md):

    PYTHONPATH=. python experiments/output_floor.py --reference_dir=CHECKOUT \
        --networks=fastscnn,dfanet,adscnet,lite_hrnet --json=docs/output_floor.json

Per network, timed in alternating rounds (``tfseg.timing.time_interleaved``), batch 1, 2 threads:

- ``reference_onnx``: the reference's own ONNX export in onnxruntime (as
  ``experiments/reference_compare.py`` builds it);
- ``reference_final``: an ONNX graph of only the reference's last op, a bilinear ``Resize``
  (align_corners, NCHW) of the class scores to the input size, in onnxruntime;
- ``tflite_int8`` / ``onnxruntime_int8``: tfseg's int8 candidates (``tfseg.bench.runtimes``);
- ``tflite_final``: a LiteRT model of only tfseg's last step in an int8 export (one float
  RESIZE_BILINEAR of the class scores, ``graph._FloatFinalResize``), called through
  ``LiteRTRunner`` (its copy of the logits included), and ``onnxruntime_final``: the same step as
  tfseg's ONNX file has it (NHWC ``Resize``, half-pixel).

The report gives each network's ``bound``: the reference's ONNX time over tfseg's fastest final
step, the speed-up that a network body taking no time at all would reach. The score map's shape
and the upsampling factor are read from the tfseg model's last ``BilinearUpsample``.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_list("networks", ["fastscnn", "dfanet", "adscnet", "lite_hrnet"], "zoo networks.")
flags.DEFINE_string("reference_dir", None, "checkout of the reference zoo (nothing of it is "
                    "committed); without it the reference rows are left out.")
flags.DEFINE_string("input_size", "512x1024", "HxW.")
flags.DEFINE_integer("num_classes", 19, "classes.")
flags.DEFINE_integer("threads", 2, "threads of every runtime.")
flags.DEFINE_integer("rounds", 8, "timed rounds.")
flags.DEFINE_integer("warmup", 2, "untimed calls of each runner first.")
flags.DEFINE_string("json", None, "write the results here.")
FLAGS = flags.FLAGS


def final_step(model):
    """``(h, w, classes, factor)`` of the class scores that ``model``'s last bilinear upsampling
    takes, or ``None`` when its logits are not made by one."""
    from tfseg.export_lib import graph

    layer = graph.output_layers(model)[0]
    if not isinstance(layer, graph.BilinearUpsample) or layer.factor <= 1:
        return None
    shape = layer._inbound_nodes[0].input_tensors[0].shape
    return int(shape[1]), int(shape[2]), int(shape[3]), int(layer.factor)


def onnx_resize(h, w, c, factor, nchw, threads):
    """onnxruntime on a graph of one bilinear ``Resize`` by ``factor``: NCHW with align_corners
    (the reference's ``F.interpolate``) or NHWC with half-pixel centres (tfseg's ONNX)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    shape = [1, c, h, w] if nchw else [1, h, w, c]
    scales = [1, 1, factor, factor] if nchw else [1, factor, factor, 1]
    out = [1, c, h * factor, w * factor] if nchw else [1, h * factor, w * factor, c]
    mode = "align_corners" if nchw else "half_pixel"
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode=mode)
    graph = helper.make_graph(
        [node], "final_resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        initializer=[helper.make_tensor("scales", TensorProto.FLOAT, [4], scales)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(proto.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    return lambda: session.run(None, {"x": x})[0]


def tflite_resize(h, w, c, factor, threads):
    """``LiteRTRunner`` on a LiteRT model of one float bilinear resize by ``factor`` (half-pixel
    centres, as ``graph._FloatFinalResize`` writes it), the copy of its output included."""
    import tensorflow as tf

    from tfseg.export_lib.tflite import LiteRTRunner

    fn = tf.function(lambda t: tf.image.resize(t, (h * factor, w * factor), "bilinear"),
                     input_signature=[tf.TensorSpec([1, h, w, c], tf.float32)])
    content = tf.lite.TFLiteConverter.from_concrete_functions(
        [fn.get_concrete_function()], fn).convert()
    runner = LiteRTRunner(content, threads=threads)
    x = np.random.default_rng(0).random((1, h, w, c), dtype=np.float32)
    return lambda: runner(x)


def measure(name, size, hub, modules):
    """One row: the runners above timed in alternating rounds, with their medians in ms."""
    import shutil
    import tempfile

    import keras
    import torch

    import tfseg
    from tfseg.bench.runtimes import make_runner
    from tfseg.timing import time_interleaved

    model = tfseg.build_model(name, FLAGS.num_classes, input_shape=(*size, 3))
    step = final_step(model)
    row = {"network": name, "input_size": f"{size[0]}x{size[1]}", "final_step": None}
    if step is None:
        row["reason"] = "the logits are not made by one bilinear upsampling"
        return row
    h, w, c, factor = step
    row["final_step"] = f"{h}x{w}x{c} x{factor}"
    x = np.random.default_rng(0).random((1, *size, 3), dtype=np.float32)
    runners, workdir, cache = {}, tempfile.mkdtemp(prefix="tfseg_floor_"), {}
    try:
        if hub is not None:
            from experiments import reference_compare as rc
            from tfseg.export_lib.onnx_export import OnnxRunner

            net = rc.build_reference(hub[rc.reference_name(name)], FLAGS.num_classes)
            xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            data, row["reference_exporter"] = rc.export_reference(net, xt, modules, "auto")
            ref = OnnxRunner(data, threads=FLAGS.threads)
            xn = xt.numpy()
            runners["reference_onnx"] = lambda: ref(xn)
            runners["reference_final"] = onnx_resize(h, w, c, factor, True, FLAGS.threads)
        for runtime in ("tflite_int8", "onnxruntime_int8"):
            fn = make_runner(runtime, model, size, threads=FLAGS.threads, workdir=workdir,
                             cache=cache)
            runners[runtime] = (lambda f: lambda: f(x))(fn)
        runners["tflite_final"] = tflite_resize(h, w, c, factor, FLAGS.threads)
        runners["onnxruntime_final"] = onnx_resize(h, w, c, factor, False, FLAGS.threads)
        times = time_interleaved(runners, warmup=FLAGS.warmup, runs=FLAGS.rounds)
    finally:
        runners.clear()
        shutil.rmtree(workdir, ignore_errors=True)
        keras.backend.clear_session()
    med = {k: round(1e3 * float(np.median(v)), 2) for k, v in times.items()}
    row["median_ms"] = med
    floor = min(med["tflite_final"], med["onnxruntime_final"])
    best = min(med["tflite_int8"], med["onnxruntime_int8"])
    row["tfseg_best_ms"], row["tfseg_final_ms"] = best, floor
    if "reference_onnx" in med:
        row["ratio"] = round(med["reference_onnx"] / best, 2)
        row["bound"] = round(med["reference_onnx"] / floor, 2)
        row["body_ratio"] = round((med["reference_onnx"] - med["reference_final"])
                                  / max(best - floor, 1e-9), 2)
    return row


def main(argv):
    del argv
    if "torch" not in sys.modules:  # as reference_compare.py: torch's OpenMP threads wait passively
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from tfseg.config import parse_size
    from tfseg.cpuinfo import cpu_description

    size = parse_size(FLAGS.input_size, "--input_size")
    hub = modules = None
    if FLAGS.reference_dir:
        import torch

        from experiments import reference_compare as rc

        torch.set_num_threads(FLAGS.threads)
        hub, _, modules = rc.load_reference(FLAGS.reference_dir)
    rows = []
    for name in FLAGS.networks:
        row = measure(name, size, hub, modules)
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"cpu": cpu_description(), "threads": FLAGS.threads, "rounds": FLAGS.rounds,
           "rows": rows}
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    app.run(main)
