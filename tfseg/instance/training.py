"""Glue between ``--task=instance`` and the training / evaluation programs.

The shared programs only call into here: flags (``define_instance_flags``,
``instance_config_from_flags``), the model builder, the compile losses, and the final AP.
"""

import functools

from absl import flags

from tfseg.instance.module import INSTANCE_LOSSES, InstanceCentreLoss

TASKS = ("semantic", "instance")


def define_postprocess_flags(fv, defaults):
    """Post-processing flags shared by train (final AP) and evaluate."""
    flags.DEFINE_integer(
        "min_instance_area",
        defaults.min_instance_area,
        "Instances with fewer pixels are dropped (the paper's area threshold).",
        lower_bound=0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "instance_quantization",
        defaults.quantization,
        "Bin size (pixels) that quantises predicted centres into instance ids.",
        lower_bound=1e-3,
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "instance_per_class",
        defaults.per_class,
        "Group pixels by (class, centre bin) instead of by centre bin with a majority class.",
        flag_values=fv,
    )


def define_instance_flags(fv):
    """``--task`` and the instance-module flags of ``tfseg.train``."""
    from tfseg.config import InstanceConfig

    d = InstanceConfig()
    flags.DEFINE_enum(
        "task",
        "semantic",
        list(TASKS),
        "semantic, or instance: adds the SSN instance module (second output: centres) and its "
        "loss; needs *_instanceIds.png (cityscapes, synthetic). See docs/instance.md.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "instance_iterations",
        d.iterations,
        "Sampling iterations t of the instance module (paper: 30).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "instance_loss", d.loss, list(INSTANCE_LOSSES), "Centre regression loss.", flag_values=fv
    )
    flags.DEFINE_float(
        "instance_loss_weight", d.loss_weight, "Weight of the instance loss.", lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "semantic_loss_weight", d.semantic_loss_weight, "Weight of the semantic loss (instance task).",
        lower_bound=0.0, flag_values=fv,
    )
    flags.DEFINE_float(
        "instance_offset_scale",
        d.offset_scale,
        "One guidance-offset unit in pixels of the module's resolution (tanh range x this).",
        lower_bound=1e-3,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "instance_stride", d.stride, "Stride of the feature map the module reads.", lower_bound=1,
        flag_values=fv,
    )
    define_postprocess_flags(fv, d)


_INSTANCE_ONLY = (
    "instance_iterations", "instance_loss", "instance_loss_weight", "semantic_loss_weight",
    "instance_offset_scale", "instance_stride", "min_instance_area", "instance_quantization",
    "instance_per_class",
)


def instance_config_from_flags(fv):
    """``InstanceConfig`` from the flags; instance flags without ``--task=instance`` are an error."""
    from tfseg.config import InstanceConfig

    enabled = fv.task == "instance"
    if not enabled:
        given = [f"--{n}" for n in _INSTANCE_ONLY if fv[n].present]
        if given:
            raise ValueError(f"{', '.join(given)} need --task=instance")
        return InstanceConfig()
    from tfseg.data import list_datasets

    with_instances = list_datasets(has_instances=True)
    if fv.dataset not in with_instances:
        raise ValueError(
            f"--task=instance needs Cityscapes-format instanceIds ground truth "
            f"(--dataset={' or '.join(with_instances)}), not --dataset={fv.dataset}"
        )
    return InstanceConfig(
        enabled=True,
        iterations=fv.instance_iterations,
        loss=fv.instance_loss,
        loss_weight=fv.instance_loss_weight,
        semantic_loss_weight=fv.semantic_loss_weight,
        offset_scale=fv.instance_offset_scale,
        stride=fv.instance_stride,
        quantization=fv.instance_quantization,
        min_instance_area=fv.min_instance_area,
        per_class=fv.instance_per_class,
    )


def check_train_config(config):
    """Combinations the instance task does not support, as a clear error."""
    if getattr(config.train, "label_relaxation_kernel", 0) > 1:
        raise ValueError(
            "--task=instance does not support label relaxation (the instance pipeline yields plain "
            "labels); pass --label_relaxation_kernel=0"
        )


def instance_model_builder(config):
    """``build_model``-compatible builder of the two-output model configured by ``config``."""
    from tfseg.instance.model import build_instance_model

    check_train_config(config)
    ic = config.instance
    return functools.partial(
        build_instance_model,
        iterations=ic.iterations,
        offset_scale=ic.offset_scale,
        stride=ic.stride,
    )


def compile_losses(config, semantic_loss):
    """``model.compile`` keyword arguments: the two losses and their weights."""
    ic = config.instance
    return {
        "loss": [semantic_loss, InstanceCentreLoss(ic.loss)],
        "loss_weights": [float(ic.semantic_loss_weight), float(ic.loss_weight)],
    }


def instance_metrics(model, spec, config, split=None, max_images=None):
    """AP / AP50 (per class and mean) of ``model`` on the validation split, printed and returned."""
    from tfseg.instance.evaluation import evaluate_instances, format_ap_table

    ic = config.instance
    split = split or config.data.val_split
    result = evaluate_instances(
        model, spec, split, max_images=max_images, quantization=ic.quantization,
        min_area=ic.min_instance_area, per_class=ic.per_class, verbose=False,
    )
    print(format_ap_table(result, title=f"{model.name} instances on {spec.name}/{split}"))
    result.pop("ap_matrix", None)
    return result


# --------------------------------------------------------------------------------------------------
# tfseg.evaluate --task=instance
# --------------------------------------------------------------------------------------------------


def define_evaluate_flags(fv):
    """``--task`` and the post-processing flags of ``tfseg.evaluate``."""
    from tfseg.config import InstanceConfig

    flags.DEFINE_enum(
        "task",
        "semantic",
        list(TASKS),
        "semantic (mIoU) or instance (AP / AP50 per class, Cityscapes-style; needs a model trained "
        "with --task=instance and instanceIds ground truth).",
        flag_values=fv,
    )
    define_postprocess_flags(fv, InstanceConfig())


def run_instance_evaluation(fv, model, spec):
    """``tfseg.evaluate --task=instance``: AP table printed; returns the result dict.

    ``--save_predictions=DIR`` writes the official result format (``<id>.txt`` + ``masks/``).
    """
    from tfseg.instance.evaluation import evaluate_instances, format_ap_table
    from tfseg.instance.model import require_instance_head

    if fv.scales != ["1.0"] or fv.flip or fv.scale != 1.0:
        raise ValueError("--task=instance evaluates at full resolution: drop --scales/--flip/--scale")
    require_instance_head(model, f"--model_path={fv.model_path}:")
    result = evaluate_instances(
        model, spec, fv.split, max_images=fv.max_images, quantization=fv.instance_quantization,
        min_area=fv.min_instance_area, per_class=fv.instance_per_class,
        save_predictions=fv.save_predictions,
    )
    print(format_ap_table(result, title=f"{model.name} instances on {spec.name}/{fv.split}"))
    print(
        f"{result['seconds']:.1f}s; network {result['ms_per_image']:.1f} ms/image, "
        f"post-processing {result['postprocess_ms_per_image']:.1f} ms/image"
    )
    return result


# --------------------------------------------------------------------------------------------------
# tfseg.predict with an instance model
# --------------------------------------------------------------------------------------------------


def define_predict_flags(fv):
    from tfseg.config import InstanceConfig

    define_postprocess_flags(fv, InstanceConfig())


class InstanceOverlayWriter:
    """``tfseg.predict`` for two-output models: semantic labels plus, per image,
    ``<stem>_instances.png`` (instance overlay), ``<stem>_instance_ids.png`` (16-bit ids, 0 = none)
    and ``<stem>_instances.json`` (class, area, confidence per instance)."""

    def __init__(self, model, fv):
        from tfseg.instance.evaluation import make_instance_predict_fn
        from tfseg.models import model_stride

        self.predict = make_instance_predict_fn(model)
        self.stride = model_stride(model)
        self.options = dict(
            quantization=fv.instance_quantization,
            min_area=fv.min_instance_area,
            per_class=fv.instance_per_class,
        )

    def __call__(self, image, stem, output):
        """uint8 RGB (H, W, 3) -> train-id labels (H, W); writes the instance files."""
        import json
        import os

        import numpy as np
        from PIL import Image

        from tfseg.data import normalize
        from tfseg.instance.postprocess import centres_to_instances, instance_overlay

        h, w = image.shape[:2]
        x = np.asarray(normalize(image.astype(np.float32)))
        x = np.pad(x, ((0, -h % self.stride), (0, -w % self.stride), (0, 0)))
        probs, centres = self.predict(x[None].astype(np.float32))
        probs, centres = probs.numpy()[0, :h, :w], centres.numpy()[0, :h, :w]
        labels = np.argmax(probs, axis=-1).astype(np.uint8)
        inst_map, instances = centres_to_instances(
            centres, labels, probabilities=probs, **self.options
        )
        Image.fromarray(instance_overlay(image, inst_map)).save(
            os.path.join(output, f"{stem}_instances.png")
        )
        Image.fromarray(inst_map.astype(np.uint16)).save(
            os.path.join(output, f"{stem}_instance_ids.png")
        )
        with open(os.path.join(output, f"{stem}_instances.json"), "w") as f:
            json.dump(instances, f, indent=1)
        return labels
