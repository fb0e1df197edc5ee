"""Run a TensorRT engine on images, a folder of images or a video; print latency and FPS.

    python3 run_engine.py --engine model.engine --input frames/ --output out/
    python3 run_engine.py --engine model.engine --input drive.mp4 --output out/ --runs 200

Latency: ``--warmup`` untimed runs, then ``--runs`` timed runs of the engine on the first input
(host-to-device copy + inference + device-to-host copy), printed as median / p90 / FPS; then every
input is processed (pre-processing, inference, argmax, writing), with the end-to-end FPS.

Outputs per image: ``<stem>_labels.png`` (train ids), ``<stem>_color.png``, ``<stem>_overlay.png``
(as ``python -m tfseg.predict``); for a video: ``<stem>_overlay.mp4`` (needs OpenCV).
Pre/post-processing: ``common.py`` (identical to tfseg's). A ``.onnx`` file instead of an engine
runs with onnxruntime on the CPU, to check the pipeline on a desktop.

Standalone: numpy, TensorRT, pycuda or cuda-python, PIL (images) / OpenCV (video); Python 3.6.
"""

import argparse
import json
import os
import sys
import time

if __package__:
    from . import common
    from . import engine as engine_lib
else:  # run as a script from this folder on the device
    import common
    import engine as engine_lib


def _pick(outputs, runner):
    """The engine's ``labels`` output if it has one, else ``logits``, else its first output.

    (A ``--task=instance`` export also has an ``instance`` output, the centres; not used here.)
    """
    for name in ("labels", "logits"):
        if name in outputs:
            return outputs[name]
    return outputs[runner.output_names[0]]


def infer_labels(runner, image, stride=32):
    """RGB uint8 image -> uint8 label map of the same size."""
    size = engine_lib.fixed_input_size(runner.input_shape)
    x = common.preprocess(image, stride, size)
    return common.postprocess(_pick(runner(x), runner), image.shape, stride, size)


def _frames(path):
    try:
        import cv2
    except ImportError as e:
        raise RuntimeError("reading a video needs OpenCV (python3-opencv on JetPack)") from e
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise RuntimeError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield frame[:, :, ::-1].copy(), fps  # BGR -> RGB
    finally:
        cap.release()


def run(model, inputs, output=None, *, warmup=10, runs=100, stride=32, alpha=0.5, threads=None,
        max_frames=None, num_classes=19):  # fmt: skip
    """Run ``model`` (engine or ONNX path) on ``inputs``; returns a summary dict.

    ``num_classes`` only picks the palette of an engine that outputs labels instead of logits.
    """
    runner = engine_lib.open_model(model, threads=threads)
    kind, files = common.find_inputs(inputs)
    if output:
        os.makedirs(output, exist_ok=True)
    size = engine_lib.fixed_input_size(runner.input_shape)
    if kind == "images":
        first = common.read_image(files[0])
    else:
        first = next(_frames(files[0]))[0]
    x = common.preprocess(first, stride, size)
    out = _pick(runner(x), runner)
    colors = common.palette(out.shape[-1] if out.ndim == 4 else num_classes)
    times = common.time_calls(lambda: runner(x), warmup, runs)
    inference = common.latency_stats(times)
    writer = None
    e2e = []
    count = 0
    if kind == "images":
        stream = ((common.read_image(f), f) for f in files)
    else:
        stream = ((frame, files[0]) for frame, _ in _frames(files[0]))
    for image, path in stream:
        if max_frames is not None and count >= max_frames:
            break
        start = time.perf_counter()
        labels = infer_labels(runner, image, stride)
        e2e.append(time.perf_counter() - start)
        count += 1
        if not output:
            continue
        color = common.colorize(labels, colors)
        blended = common.overlay(image, color, alpha)
        stem = os.path.splitext(os.path.basename(path))[0]
        if kind == "images":
            common.write_png(os.path.join(output, stem + "_labels.png"), labels)
            common.write_png(os.path.join(output, stem + "_color.png"), color)
            common.write_png(os.path.join(output, stem + "_overlay.png"), blended)
        else:
            import cv2

            if writer is None:
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                h, w = blended.shape[:2]
                writer = cv2.VideoWriter(
                    os.path.join(output, stem + "_overlay.mp4"), fourcc, 30.0, (w, h)
                )
            writer.write(blended[:, :, ::-1])
    if writer is not None:
        writer.release()
    return {
        "model": model,
        "input_shape": [int(d) for d in x.shape],
        "inference": inference,
        "end_to_end": common.latency_stats(e2e) if e2e else None,
        "frames": count,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description="Run a TensorRT engine from a tfseg model.")
    p.add_argument("--engine", required=True, help=".engine file (or .onnx: onnxruntime on CPU)")
    p.add_argument("--input", required=True, help="an image, a folder of images, or a video")
    p.add_argument("--output", help="folder for label maps / overlays (nothing written if unset)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first")
    p.add_argument("--runs", type=int, default=100, help="timed runs")
    p.add_argument("--stride", type=int, default=32, help="model input stride (padding)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    p.add_argument("--max_frames", type=int, help="stop after N images / frames")
    p.add_argument("--threads", type=int, help="CPU threads (onnxruntime only)")
    p.add_argument("--num_classes", type=int, default=19, help="palette size for a labels output")
    p.add_argument("--json", help="write the timing summary here")
    args = p.parse_args(argv)
    try:
        summary = run(
            args.engine,
            args.input,
            args.output,
            warmup=args.warmup,
            runs=args.runs,
            stride=args.stride,
            alpha=args.alpha,
            threads=args.threads,
            max_frames=args.max_frames,
            num_classes=args.num_classes,
        )
    except (RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    inf = summary["inference"]
    print(
        ("inference {}: median {:.2f} ms, p90 {:.2f} ms, {:.1f} FPS "
         "({} runs after {} warm-up)").format(
            "x".join(str(d) for d in summary["input_shape"]),
            inf["median_ms"], inf["p90_ms"], inf["fps"], inf["runs"], args.warmup,
        )
    )  # fmt: skip
    if summary["end_to_end"]:
        e2e = summary["end_to_end"]
        print(
            "end to end (pre-processing + inference + argmax) over {} frames: median {:.2f} ms, "
            "{:.1f} FPS".format(summary["frames"], e2e["median_ms"], e2e["fps"])
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
