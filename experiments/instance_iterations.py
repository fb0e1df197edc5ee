"""Table 6 analog of the SSN paper: AP, AP50 and latency against the sampling iterations t.

Trains (or loads) one ``--task=instance`` model, then for every t in ``--iterations`` sets the
instance module's iteration count, evaluates AP / AP50 on the validation split and times the
network (batch 1, median of ``--repeats`` runs after warm-up; every t and runtime in turn, so a
drifting shared machine slows them alike; ``--runtimes=keras,tflite``) and the post-processing::

    nice -n 10 python experiments/instance_iterations.py --run_dir=runs/inst_t --epochs=8 \
        --iterations=3,5,10,20,30,40 --json=runs/inst_t/iterations.json

``--retrain`` trains one model per t (the paper's protocol, t times the cost); by default one model
trained with ``--train_iterations`` (30) is evaluated at every t, i.e. t is an inference-time
setting of that model. Prints a markdown table.
"""

import argparse
import json
import os
import statistics


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--run_dir", required=True, help="Output folder (one sub-run per trained model)."
    )
    p.add_argument("--model", default="ssn")
    p.add_argument("--encoder", default=None)
    p.add_argument("--data_dir", default="data/synthetic_instance")
    p.add_argument(
        "--dataset_options",
        default='{"num_train": 200, "num_val": 30, "height": 128, "width": 256}',
    )
    p.add_argument("--crop_size", default="128x256")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--learning_rate", type=float, default=3e-3)
    p.add_argument("--val_every", type=int, default=None,
                   help="Validate every N epochs (default: only after the last epoch).")
    p.add_argument("--train_iterations", type=int, default=30)
    p.add_argument("--iterations", default="3,5,10,20,30,40")
    p.add_argument("--retrain", action="store_true", help="Train one model per t.")
    p.add_argument("--instance_loss_weight", type=float, default=1.0)
    p.add_argument("--min_instance_area", type=int, default=20)
    p.add_argument("--quantization", type=float, default=4.0)
    p.add_argument("--repeats", type=int, default=20, help="Timed runs per t and runtime.")
    p.add_argument("--runtimes", default="keras",
                   help="Comma-separated: keras (tf.function) and/or tflite (LiteRT, BN folded).")
    p.add_argument("--threads", type=int, default=None, help="LiteRT threads (default: all).")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def _config(args, t, run_dir):
    from tfseg.config import (
        Config,
        DataConfig,
        InstanceConfig,
        ModelConfig,
        TrainConfig,
        parse_size,
    )
    from tfseg.models import needs_encoder

    return Config(
        model=ModelConfig(
            name=args.model,
            encoder=(args.encoder or "mobilenet") if needs_encoder(args.model) else None,
        ),
        data=DataConfig(
            dataset="synthetic",
            data_dir=args.data_dir,
            dataset_options=json.loads(args.dataset_options),
            crop_size=parse_size(args.crop_size),
            batch_size=args.batch_size,
            min_scale=0.75,
            max_scale=1.5,
        ),
        train=TrainConfig(
            run_dir=run_dir,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            val_every=args.val_every or args.epochs,
            resume=True,
        ),
        task="instance",
        instance=InstanceConfig(
            iterations=t,
            loss_weight=args.instance_loss_weight,
            min_instance_area=args.min_instance_area,
            quantization=args.quantization,
        ),
    )


def _trained(args, t):
    from tfseg.training import train

    run_dir = os.path.join(args.run_dir, f"train_t{t}")
    config = _config(args, t, run_dir)
    if not os.path.exists(os.path.join(run_dir, "metrics.json")):
        train(config)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    return config, os.path.join(run_dir, "model.keras"), metrics


def _keras_fn(model):
    from tfseg.instance.evaluation import make_instance_predict_fn

    predict = make_instance_predict_fn(model)  # traced at the first call, with the current t

    def run(x):
        return [o.numpy() for o in predict(x)]

    return run


def _tflite_fn(model, size, threads):
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.pipeline import rewrites
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite

    folded = inference_model(model, **rewrites("tflite"))[0]
    return LiteRTRunner(convert_tflite(folded, input_size=size), threads=threads).outputs


def main(argv=None):
    args = parse_args(argv)
    if args.val_every is not None and args.val_every < 1:
        raise SystemExit(f"--val_every must be a positive number of epochs, got {args.val_every}")
    import numpy as np

    from tfseg.data import get_dataset
    from tfseg.instance.evaluation import evaluate_instances
    from tfseg.instance.module import InstanceSampling
    from tfseg.models.saving import load_model
    from tfseg.timing import time_interleaved

    ts = [int(t) for t in args.iterations.split(",")]
    if min(ts) < 1:
        raise SystemExit(f"--iterations must be positive integers, got {args.iterations}")
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = sorted(set(runtimes) - {"keras", "tflite"})
    if unknown or not runtimes:
        raise SystemExit(f"--runtimes: unknown {unknown or runtimes}; choose keras and/or tflite")
    rows, fns = [], {}
    for t in ts:
        config, path, train_metrics = _trained(args, t if args.retrain else args.train_iterations)
        spec = get_dataset("synthetic", args.data_dir, **config.data.dataset_options)
        model = load_model(path)
        layers = [la for la in model.layers if isinstance(la, InstanceSampling)]
        if len(layers) != 1:
            raise SystemExit(f"{path} has {len(layers)} InstanceSampling layers, expected 1")
        layers[0].iterations = t  # read when the predict function is traced
        result = evaluate_instances(
            model, spec, config.data.val_split, quantization=args.quantization,
            min_area=args.min_instance_area, verbose=False,
        )
        options = config.data.dataset_options
        h, w = options.get("height", 256), options.get("width", 512)
        x = np.zeros((1, h, w, 3), np.float32)
        if "keras" in runtimes:
            fns[(t, "keras")] = _keras_fn(model)
            fns[(t, "keras")](x)  # trace now, while the layer holds this t
        if "tflite" in runtimes:
            fns[(t, "tflite")] = _tflite_fn(model, (h, w), args.threads)
        rows.append({
            "t": t,
            "trained_with_t": t if args.retrain else args.train_iterations,
            "ap": result["ap"],
            "ap50": result["ap50"],
            "miou": train_metrics["val"]["miou"],
            "postprocess_ms": result["postprocess_ms_per_image"],
            "input": f"{h}x{w}",
            "val_images": result["num_images"],
        })
        print(json.dumps(rows[-1]), flush=True)
    # each t and runtime in turn, so that drifts of a shared machine hit every t alike
    times = time_interleaved(fns, x, warmup=3, runs=args.repeats)
    ms = {key: 1000 * statistics.median(v) for key, v in times.items()}
    for r in rows:
        for runtime in runtimes:
            r[f"{runtime}_ms"] = ms[(r["t"], runtime)]
    print(f"\n| t | AP % | AP50 % | {' | '.join(f'{r} ms' for r in runtimes)} | post-proc ms |")
    print("|---|---|---|" + "---|" * len(runtimes) + "---|")
    for r in rows:
        times = " | ".join(f"{r[f'{runtime}_ms']:.1f}" for runtime in runtimes)
        print(
            f"| {r['t']} | {100 * (r['ap'] or 0):.2f} | {100 * (r['ap50'] or 0):.2f} | {times} | "
            f"{r['postprocess_ms']:.1f} |"
        )
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
