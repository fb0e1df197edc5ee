"""One int8 LiteRT export rewrite on a *trained* model: accuracy against the dataset's labels and
latency, with the rewrite off and on (issue 22's accuracy guard; ``export_rewrites.py`` measures
the same rewrites on random weights, where argmax agreement is only a rough check):

    python -m tfseg.train --flagfile=configs/quickstart.cfg --run_dir=runs/quickstart
    PYTHONPATH=. python experiments/int8_rewrite_trained.py \
        --model_path=runs/quickstart/model.keras --option=same_pool_as_conv

Both forms are calibrated on the same ``--calibration_steps`` train images and checked on the same
``--verify_images`` val images with ``tfseg.export_lib.verify.compare`` (what
``tfseg.export --verify`` reports: argmax agreement with the Keras model, mIoU of both), then
timed in ``--rounds`` alternating rounds (``LiteRTRunner``, ``--threads``).
"""

import json

import numpy as np
from absl import app, flags

flags.DEFINE_string("model_path", None, "A trained tfseg .keras model.", required=True)
flags.DEFINE_string("option", "same_pool_as_conv",
                    "The boolean ``graph.inference_model`` option to switch off and on.")
flags.DEFINE_string("dataset", "synthetic", "Dataset of the calibration and val images.")
flags.DEFINE_string("data_dir", "data/synthetic", "Its folder.")
flags.DEFINE_string("input_size", "256x512", "HxW of the export.")
flags.DEFINE_integer("calibration_steps", 100, "Train images for int8 calibration.")
flags.DEFINE_integer("verify_images", 50, "Val images for the comparison.")
flags.DEFINE_integer("threads", 2, "LiteRT threads.")
flags.DEFINE_integer("rounds", 20, "Timed rounds.")
flags.DEFINE_string("json", None, "Write the results here.")
FLAGS = flags.FLAGS
# ``inference_model`` info keys that are not the option's name
INFO_KEYS = {"expand_depthwise": "expanded_depthwise", "native_resize": "native_resizes",
             "transpose_shuffle": "transpose_shuffles"}


def main(argv):
    del argv
    import inspect

    from tfseg.arrays import parse_size
    from tfseg.cpuinfo import cpu_description
    from tfseg.evaluation import make_predict_fn
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.pipeline import rewrites
    from tfseg.export_lib.samples import calibration_images, load_spec, samples
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite
    from tfseg.export_lib.verify import compare
    from tfseg.files import write_json_atomic
    from tfseg.models import model_stride
    from tfseg.models.saving import load_model
    from tfseg.timing import latency_stats, time_interleaved

    size = parse_size(FLAGS.input_size, "--input_size")
    options = [name for name, p in inspect.signature(inference_model).parameters.items()
               if isinstance(p.default, bool)]
    if FLAGS.option not in options:
        raise app.UsageError(f"--option={FLAGS.option!r} is not a boolean inference_model option "
                             f"(one of: {', '.join(options)})")
    model = load_model(FLAGS.model_path)
    stride = model_stride(model)
    spec = load_spec(FLAGS.dataset, FLAGS.data_dir, {})
    rep = calibration_images(spec, "train", steps=FLAGS.calibration_steps, input_size=size,
                             stride=stride)
    predict = make_predict_fn(model)
    doc = {"cpu": cpu_description(), "model_path": FLAGS.model_path, "option": FLAGS.option,
           "input_size": FLAGS.input_size, "calibration_steps": FLAGS.calibration_steps,
           "verify_images": FLAGS.verify_images, "threads": FLAGS.threads, "forms": {}}
    runners = {}
    for form, on in (("off", False), ("on", True)):
        kw = {**rewrites("tflite", "int8"), FLAGS.option: on}
        copy, info = inference_model(model, **kw)
        runner = LiteRTRunner(convert_tflite(copy, input_size=size, precision="int8",
                                             representative=rep), threads=FLAGS.threads)
        result = compare(
            lambda x: predict(x).numpy(), runner,
            samples(spec, "val", count=FLAGS.verify_images, input_size=size, stride=stride),
            num_classes=spec.num_classes, ignore_label=spec.ignore_label, precision="int8",
        )  # fmt: skip
        doc["forms"][form] = {
            "layers": info.get(INFO_KEYS.get(FLAGS.option, FLAGS.option)),
            **{k: result[k] for k in ("argmax_agreement", "miou_keras", "miou_artifact")},
        }
        runners[form] = runner
        print(form, json.dumps(doc["forms"][form]), flush=True)
    times = time_interleaved(runners, np.asarray(rep[0]), warmup=3, runs=FLAGS.rounds)
    for form, t in times.items():
        doc["forms"][form]["median_ms"] = latency_stats(t)["median_ms"]
    print(json.dumps({f: round(d["median_ms"], 2) for f, d in doc["forms"].items()}))
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    app.run(main)
