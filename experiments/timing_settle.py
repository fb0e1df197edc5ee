"""Why ``tfseg.timing.time_interleaved`` settles each runner before timing it (docs/results.md,
"Timing several runtimes"): one network's runtimes timed three ways in one process, on the same
input and weights:

- ``alone``: each runtime called back to back (what a deployed model that runs alone sees), at the
  start and again at the end, to show how far the machine drifted meanwhile;
- ``interleaved``: one call of each runtime per round, no settling (``settle_s=0``);
- ``settled``: the same rounds, each timed call after ``SETTLE_S`` of untimed calls of the same
  runtime (what the benchmark, ``--format=auto`` and reference_compare.py do).

    PYTHONPATH=. python experiments/timing_settle.py --network=fastscnn \\
        --reference_dir=/path/to/zh320-checkout --json=docs/timing_settle.json

Without ``--reference_dir`` only tfseg's runtimes are timed.
"""

import json
import os
import sys
import tempfile

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("network", "fastscnn", "tfseg network (random weights).")
flags.DEFINE_string("reference_dir", None, "Checkout of the reference zoo: adds its eager model "
                    "and its own ONNX export (experiments/reference_compare.py).")
flags.DEFINE_list("runtimes", ["onnxruntime", "tflite", "tflite_int8"], "tfseg runtimes.")
flags.DEFINE_string("input_size", "512x1024", "HxW.")
flags.DEFINE_integer("threads", 2, "CPU threads of every runtime.")
flags.DEFINE_integer("rounds", 8, "Timed calls per runtime and protocol.")
flags.DEFINE_string("json", None, "Write the medians here.")


def main(argv):
    del argv
    if "torch" not in sys.modules:  # as reference_compare.py: torch's OpenMP threads wait passively
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import tfseg
    from tfseg.bench.runtimes import make_runner
    from tfseg.config import parse_size
    from tfseg.cpuinfo import cpu_description
    from tfseg.timing import SETTLE_S, time_call, time_interleaved, warm_up

    size = parse_size(FLAGS.input_size, "--input_size")
    rng = np.random.default_rng(0)
    x = rng.random((1, *size, 3), dtype=np.float32)
    runners = {}
    if FLAGS.reference_dir:
        import torch

        from experiments import reference_compare as rc
        from tfseg.export_lib.onnx_export import OnnxRunner

        torch.set_num_threads(FLAGS.threads)
        rc.import_torchvision()
        hub, _, modules = rc.load_reference(FLAGS.reference_dir)
        net = rc.build_reference(hub[rc.reference_name(FLAGS.network)], 19)
        xc = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        onnx_runner = OnnxRunner(rc.export_reference(net, xc, modules)[0], threads=FLAGS.threads)

        def eager():
            with torch.inference_mode():
                return net(xc)

        runners["reference_eager"] = eager
        runners["reference_onnx"] = lambda: onnx_runner(xc.numpy())
    model = tfseg.build_model(FLAGS.network, 19, input_shape=(*size, 3))
    workdir, cache = tempfile.mkdtemp(prefix="tfseg_settle_"), {}
    for runtime in FLAGS.runtimes:
        fn = make_runner(runtime, model, size, threads=FLAGS.threads, workdir=workdir, cache=cache)
        runners[runtime] = (lambda f: lambda: f(x))(fn)
    warm_up(runners, warmup=2)

    def alone():
        return {k: [time_call(f) for _ in range(FLAGS.rounds)] for k, f in runners.items()}

    times = {"alone (start)": alone(),
             "interleaved": time_interleaved(runners, warmup=0, runs=FLAGS.rounds, settle_s=0),
             "settled": time_interleaved(runners, warmup=0, runs=FLAGS.rounds, settle_s=SETTLE_S)}
    times["alone (end)"] = alone()
    medians = {p: {k: 1e3 * float(np.median(v)) for k, v in t.items()} for p, t in times.items()}
    print(f"{FLAGS.network}, {FLAGS.input_size}, {FLAGS.threads} threads, {cpu_description()}; "
          f"median ms of {FLAGS.rounds}")
    print("| runtime | " + " | ".join(medians) + " |")
    print("|---" * (len(medians) + 1) + "|")
    for k in runners:
        print(f"| {k} | " + " | ".join(f"{m[k]:.1f}" for m in medians.values()) + " |")
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump({"network": FLAGS.network, "input_size": FLAGS.input_size,
                       "threads": FLAGS.threads, "cpu": cpu_description(),
                       "settle_s": SETTLE_S, "median_ms": medians}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
