"""The end of a run: ``model.keras`` (the best checkpoint with the task's outputs, no optimizer) and
``metrics.json`` (its validation scores, the history and the timings)."""

import os

from tfseg.files import write_json_atomic
from tfseg.models.saving import load_model, save_model_atomic


def finalize(task, config, spec, paths, state):
    """Write ``model.keras`` and ``metrics.json``; returns the metrics."""
    from tfseg.evaluation import evaluate_model, format_table
    from tfseg.models.outputs import logits_view
    from tfseg.training.distribute import unsynchronize_batchnorm
    from tfseg.training.precision import float32_model

    best_path = paths.best if os.path.exists(paths.best) else paths.last
    from tfseg.training.qat import strip_quantization

    # --qat: the checkpoint holds the fake-quant model; model.keras is the plain float one
    best = task.final_model(strip_quantization(load_model(best_path)))
    unsynchronize_batchnorm(best)  # --sync_bn is a training setting; model.keras loads anywhere
    # a mixed-precision run still writes a float32 model.keras
    best = float32_model(
        best, lambda: task.final_model(task.build_model(config, spec.num_classes))
    )
    save_model_atomic(best, paths.model, include_optimizer=False)
    dc = config.data
    result = evaluate_model(
        logits_view(best), spec, dc.val_split, scale=dc.eval_scale, verbose=False
    )
    title = f"{best.name} on {spec.name}/{dc.val_split} (best epoch {state['best_epoch']})"
    print(format_table(result, title=title))
    metrics = _metrics(result, state, best)
    metrics.update(task.final_metrics(best, spec, config))
    write_json_atomic(paths.metrics, metrics)
    print(f"wrote {paths.model} and {paths.metrics}")
    return metrics


def _metrics(result, state, model):
    """The ``metrics.json`` entries every task writes."""
    metrics = {
        "val": {
            "miou": result["miou"],
            "per_class_iou": result["per_class_iou"],
            "pixel_accuracy": result["pixel_accuracy"],
            "mean_class_accuracy": result["mean_class_accuracy"],
            "category_iou": result.get("category_iou"),
        },
        "history": state["history"],
        "train_seconds": state["train_seconds"],
        "images_per_second": state["train_images"] / max(state["train_seconds"], 1e-9),
        "best_epoch": state["best_epoch"],
        "params": int(model.count_params()),
    }
    if state.get("qat"):
        # best_val_miou_fake_quant: the simulated int8 model's; "val" above: the float model's
        metrics["qat"] = {**state["qat"], "best_val_miou_fake_quant": state["best_miou"]}
    if state.get("stages"):
        metrics["stages"] = state["stages"]
    return metrics
