"""Average poolings in onnxruntime int8: QLinearAveragePool against the depthwise convolution of
constant weights that the int8 ONNX export writes (``graph.avg_pool_as_conv`` /
``same_pool_as_conv``), one pooling at a time, at the kernel sizes, strides, channels and map
sizes of the zoo's networks at 512x1024 (issue 22):

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/ort_int8_pools.py \
        --json=docs/ort_int8_pools_avx2.json
    PYTHONPATH=. python experiments/ort_int8_pools.py --json=docs/ort_int8_pools_native.json

Each case is a small model, 1x1 convolution (3 -> C channels) -> the pooling -> 1x1
convolution, exported to ONNX
twice (the pooling as it is, and rewritten), quantized by ``onnx_int8.quantize_onnx`` on 4
random-normal inputs, and timed interleaved (median of ``--rounds`` rounds of ``--runs`` calls).
The difference of the two medians is the pooling's own cost difference: the convolutions around
it are the same.
"""

import json

from absl import app, flags

flags.DEFINE_integer("threads", 2, "intra-op threads.")
flags.DEFINE_integer("rounds", 15, "timed rounds.")
flags.DEFINE_string("json", None, "write the medians here.")
FLAGS = flags.FLAGS

# (label, kernel, stride, padding, channels, (H, W) of the pooled map)
CASES = (
    ("ADSCNet/STDC downsampling 3x3/2 same", 3, 2, "same", 32, (256, 512)),
    ("ESPNetV2 3x3/2 valid", 3, 2, "valid", 64, (128, 256)),
    ("ADSCNet DDCC 3x3/1 same", 3, 1, "same", 64, (64, 128)),
    ("ADSCNet DDCC 9x9/1 same", 9, 1, "same", 64, (64, 128)),
    ("RegSeg shortcut 2x2/2", 2, 2, "valid", 64, (64, 128)),
    ("Lite-HRNet 2x2/2", 2, 2, "valid", 40, (64, 128)),
    ("Lite-HRNet 8x8/8", 8, 8, "valid", 40, (128, 256)),
    ("DDRNet DAPPM 5x5/2 same", 5, 2, "same", 512, (8, 16)),
    ("DDRNet DAPPM 17x17/8 same", 17, 8, "same", 512, (8, 16)),
    ("PP-LiteSeg SPPM 4x8/4x8 (adaptive to 2x2 from 8x16)", (4, 8), (4, 8), "valid", 512, (8, 16)),
)


def case_model(kernel, stride, padding, channels, size):
    import keras

    from tfseg.layers.pooling import SameAveragePooling2D

    inp = keras.Input((*size, 3))
    x = keras.layers.Conv2D(channels, 1, activation="relu")(inp)
    if padding == "same":
        x = SameAveragePooling2D(kernel, strides=stride, name="pool")(x)
    else:
        x = keras.layers.AveragePooling2D(kernel, strides=stride, padding="valid", name="pool")(x)
    return keras.Model(inp, keras.layers.Conv2D(channels, 1)(x))


def main(argv):
    del argv
    import numpy as np
    import onnxruntime as ort

    from tfseg.cpuinfo import cpu_description
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx
    from tfseg.export_lib.pipeline import rewrites
    from tfseg.files import write_json_atomic
    from tfseg.timing import latency_stats, time_interleaved

    doc = {"cpu": cpu_description(), "onnxruntime": ort.__version__, "threads": FLAGS.threads,
           "rounds": FLAGS.rounds, "median_ms": {}}
    print(doc["cpu"], "onnxruntime", ort.__version__)
    rng = np.random.default_rng(0)
    for label, kernel, stride, padding, channels, size in CASES:
        model = case_model(kernel, stride, padding, channels, size)
        xs = [rng.standard_normal((1, *size, 3)).astype(np.float32) for _ in range(4)]
        forms = {}
        for form, extra in (("QLinearAveragePool", {}),
                            ("depthwise convolution", {"avg_pool_as_conv": True,
                                                       "same_pool_as_conv": True})):
            copy, _ = inference_model(model, **{**rewrites("onnx"), **extra})
            proto = convert_onnx(copy, opset=17, input_shape=(1, *size))
            forms[form] = OnnxRunner(quantize_onnx(proto, xs), threads=FLAGS.threads)
        times = time_interleaved(forms, xs[0], warmup=3, runs=FLAGS.rounds)
        doc["median_ms"][label] = {k: latency_stats(v)["median_ms"] for k, v in times.items()}
        print(label, json.dumps({k: round(v, 3) for k, v in doc["median_ms"][label].items()}),
              flush=True)
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    app.run(main)
