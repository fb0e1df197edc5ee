"""What BatchNorm's initial statistics do to a random-weight network's int8 LiteRT graph, and what
the pyramid pooling's TILE did (issue 22; docs/results.md, session 24):

    PYTHONPATH=. python experiments/bn_statistics.py --networks=fastscnn,mininetv2,canet \
        --json=docs/int8_bn_statistics.json

Per network, random weights (seed 0), int8 LiteRT calibrated on the benchmark's 4 random-normal
inputs (``tfseg.bench.runtimes.calibration_inputs``), in variants:

- ``initial``: BN's initial statistics (mean 0, variance 1), as every benchmark timed random
  networks before session 24;
- ``recalibrated``: statistics from one training-mode pass over the 4 inputs
  (``tfseg.models.batchnorm.recalibrate_batchnorm``), what ``tfseg.benchmark`` and
  ``experiments/reference_compare.py`` now time;
- ``recalibrated_tile`` (networks with a pyramid pooling module): the same, with ``ResizeLike``
  broadcasting a 1x1 map by ``ops.tile`` as it did before session 24;
- ``recalibrated_leak_kept`` (networks with a ReLU after a transposed convolution): the same,
  with that ReLU's int8 stand-in kept at slope 1/256 where XNNPACK refuses its scales, as before
  session 24 (``tflite._xnnpack_deconv_leak_slopes`` off).

Reported per variant: XNNPACK delegate partitions, the ops left outside them, the smallest int8
scale of any activation (a dead branch shows as ~1e-8) and the median of ``--rounds`` alternating
rounds (``LiteRTRunner``, ``--threads``).
"""

import contextlib
import json

import numpy as np
from absl import app, flags

flags.DEFINE_list("networks", ["fastscnn", "mininetv2", "canet"], "Registered networks.")
flags.DEFINE_string("input_size", "512x1024", "HxW.")
flags.DEFINE_integer("threads", 2, "LiteRT threads.")
flags.DEFINE_integer("rounds", 10, "Timed rounds.")
flags.DEFINE_integer("warmup", 2, "Untimed calls per candidate.")
flags.DEFINE_string("json", None, "Write the results here.")
FLAGS = flags.FLAGS


@contextlib.contextmanager
def tile_broadcast():
    """``ResizeLike`` with its pre-session-24 broadcast of a 1x1 map (``ops.tile``)."""
    from keras import ops

    from tfseg.layers import pooling

    original = pooling.ResizeLike.call

    def call(self, inputs):
        x, like = inputs
        if pooling._static_hw(x) == (1, 1) and pooling._static_hw(like) is not None:
            h, w = pooling._static_hw(like)
            return ops.tile(x, (1, h, w, 1))
        return original(self, inputs)

    pooling.ResizeLike.call = call
    try:
        yield
    finally:
        pooling.ResizeLike.call = original


@contextlib.contextmanager
def leak_kept():
    """The int8 export without raising the slope of a deconvolution's leaky ReLU."""
    from tfseg.export_lib import tflite

    original = tflite._xnnpack_deconv_leak_slopes
    tflite._xnnpack_deconv_leak_slopes = lambda content, model: {}
    try:
        yield
    finally:
        tflite._xnnpack_deconv_leak_slopes = original


def graph_facts(content):
    """Partitions, the op types outside XNNPACK and the smallest activation scale of an int8
    LiteRT flatbuffer."""
    from tfseg.export_lib.tflite import LiteRTRunner

    interpreter = LiteRTRunner(content, threads=1, direct=False).interpreter
    ops = interpreter._get_ops_details()
    delegated = {t for o in ops if o["op_name"] == "DELEGATE" for t in o["outputs"]}
    feeds = {t for o in ops if o["op_name"] == "DELEGATE" for t in o["inputs"]}
    feeds |= {d["index"] for d in interpreter.get_output_details()}
    outside = sorted({o["op_name"] for o in ops if o["op_name"] != "DELEGATE"
                      and not set(o["outputs"]) & delegated and set(o["outputs"]) & feeds})
    scales = [t["quantization"][0] for t in interpreter.get_tensor_details()
              if t["dtype"] == np.int8 and t["quantization"][0] > 0 and len(t["shape"]) == 4]
    return {"xnnpack_partitions": [o["op_name"] for o in ops].count("DELEGATE"),
            "ops_outside_xnnpack": outside, "smallest_activation_scale": float(min(scales))}


def main(argv):
    del argv
    import keras

    import tfseg
    from tfseg.arrays import parse_size
    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.cpuinfo import cpu_description
    from tfseg.export_lib.graph import _DeconvLeakyReLU
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite
    from tfseg.files import write_json_atomic
    from tfseg.layers.pooling import ResizeLike
    from tfseg.models.batchnorm import recalibrate_batchnorm
    from tfseg.timing import latency_stats, time_interleaved

    size = parse_size(FLAGS.input_size, "--input_size")
    rep = calibration_inputs(size)
    doc = {"cpu": cpu_description(), "input_size": FLAGS.input_size, "threads": FLAGS.threads,
           "rounds": FLAGS.rounds, "rows": {}}
    runners = {}
    for name in FLAGS.networks:
        probe = tfseg.build_model(name, 19, input_shape=(*size, 3))
        variants = ["initial", "recalibrated"]
        if any(isinstance(layer, ResizeLike) for layer in probe.layers):
            variants.append("recalibrated_tile")
        copy = export_copy(probe, {}, "tflite", "int8")
        if any(isinstance(layer, _DeconvLeakyReLU) for layer in copy.layers):
            variants.append("recalibrated_leak_kept")
        for variant in variants:
            patch = {"recalibrated_tile": tile_broadcast, "recalibrated_leak_kept": leak_kept}
            with patch.get(variant, contextlib.nullcontext)():
                keras.utils.set_random_seed(0)
                model = tfseg.build_model(name, 19, input_shape=(*size, 3))
                if variant != "initial":
                    recalibrate_batchnorm(model, [np.concatenate(rep)])
                content = convert_tflite(export_copy(model, {}, "tflite", "int8"),
                                         input_size=size, precision="int8", representative=rep)
            key = f"{name} {variant}"
            doc["rows"][key] = graph_facts(content)
            runners[key] = LiteRTRunner(content, threads=FLAGS.threads)
            print(key, json.dumps(doc["rows"][key]), flush=True)
    times = time_interleaved(runners, rep[0], warmup=FLAGS.warmup, runs=FLAGS.rounds)
    for key, t in times.items():
        doc["rows"][key]["median_ms"] = latency_stats(t)["median_ms"]
        print(f"{key:32s} {doc['rows'][key]['median_ms']:8.2f} ms")
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    app.run(main)
