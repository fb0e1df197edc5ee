"""int8 LiteRT latency of a network with random weights (what ``reference_compare.py`` times on
both sides) against the same network trained: a random initialisation can leave a branch's
activations at ~0, whose int8 scale then falls outside what XNNPACK accepts for an ADD or a
LEAKY_RELU, and that op runs outside the delegate (docs/results.md, session 23):

    python -m tfseg.train --flagfile=configs/quickstart.cfg --model=fastscnn --epochs=3 \
        --val_every=3 --run_dir=runs/fastscnn_short
    PYTHONPATH=. python experiments/trained_vs_random.py --network=fastscnn \
        --model_path=runs/fastscnn_short/model.keras

Each model is converted to int8 twice, calibrated on random normal inputs (as
``reference_compare.py`` does) and on ``--dataset`` train images, at ``--input_size``; reported:
XNNPACK partitions and the median of ``--rounds`` alternating rounds (``LiteRTRunner``).
"""

import json

import numpy as np
from absl import app, flags

flags.DEFINE_string("network", "fastscnn", "The registered network.")
flags.DEFINE_string("model_path", None, "The same network, trained (.keras).", required=True)
flags.DEFINE_string("dataset", "synthetic", "Dataset of the real calibration images.")
flags.DEFINE_string("data_dir", "data/synthetic", "Its folder.")
flags.DEFINE_string("input_size", "512x1024", "HxW.")
flags.DEFINE_integer("calibration_steps", 20, "Calibration images of each kind.")
flags.DEFINE_integer("threads", 2, "LiteRT threads.")
flags.DEFINE_integer("rounds", 15, "Timed rounds.")
flags.DEFINE_string("json", None, "Write the results here.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import tfseg
    from tfseg.arrays import parse_size
    from tfseg.bench.runtimes import export_copy
    from tfseg.cpuinfo import cpu_description
    from tfseg.export_lib.samples import calibration_images, load_spec
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite
    from tfseg.files import write_json_atomic
    from tfseg.models import model_stride
    from tfseg.models.saving import load_model
    from tfseg.timing import latency_stats, time_interleaved

    size = parse_size(FLAGS.input_size, "--input_size")
    trained = load_model(FLAGS.model_path)
    models = {"random": tfseg.build_model(FLAGS.network, trained.output_shape[-1],
                                          input_shape=(*size, 3)),
              "trained": trained}
    rng = np.random.default_rng(0)
    calibrations = {
        "random_inputs": [rng.standard_normal((1, *size, 3), dtype=np.float32)
                          for _ in range(FLAGS.calibration_steps)],
        "dataset_images": calibration_images(
            load_spec(FLAGS.dataset, FLAGS.data_dir, {}), "train",
            steps=FLAGS.calibration_steps, input_size=size, stride=model_stride(trained)),
    }
    doc = {"cpu": cpu_description(), "network": FLAGS.network, "model_path": FLAGS.model_path,
           "input_size": FLAGS.input_size, "threads": FLAGS.threads, "rows": {}}
    runners = {}
    for weights, model in models.items():
        for calibration, rep in calibrations.items():
            content = convert_tflite(export_copy(model, {}, "tflite", "int8"), input_size=size,
                                     precision="int8", representative=rep)
            ops = LiteRTRunner(content, threads=1, direct=False).interpreter._get_ops_details()
            key = f"{weights} weights, {calibration}"
            doc["rows"][key] = {"xnnpack_partitions": [o["op_name"] for o in ops].count("DELEGATE")}
            runners[key] = LiteRTRunner(content, threads=FLAGS.threads)
    times = time_interleaved(runners, calibrations["dataset_images"][0], warmup=3,
                             runs=FLAGS.rounds)
    for key, t in times.items():
        doc["rows"][key]["median_ms"] = latency_stats(t)["median_ms"]
        print(key, json.dumps(doc["rows"][key]))
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    app.run(main)
