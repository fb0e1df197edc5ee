"""The instance task (SSN, docs/instance.md): the semantic task plus the instance head.

Adds the ``instance`` head (per-pixel instance centres) to the model, the centre targets to the
input pipeline and the centre loss to training; ``model.keras`` keeps the logits and the centres.
Scored by Cityscapes-style AP / AP50 (after the semantic mIoU that every task reports); prediction
also writes the instance overlay, id map and list. Options: ``tfseg.config.InstanceConfig``.
"""

import json
import os

import numpy as np

from tfseg.config import InstanceConfig
from tfseg.tasks.base import EvalOptions
from tfseg.tasks.semantic import SemanticTask


class InstanceOverlayWriter:
    """``Task.prediction_writer`` for two-output models: semantic labels plus, per image,
    ``<stem>_instances.png`` (instance overlay), ``<stem>_instance_ids.png`` (16-bit ids, 0 = none)
    and ``<stem>_instances.json`` (class, area, confidence per instance)."""

    def __init__(self, model, *, quantization, min_area, per_class):
        from tfseg.instance.evaluation import make_instance_predict_fn
        from tfseg.models import model_stride

        self.predict = make_instance_predict_fn(model)
        self.stride = model_stride(model)
        self.options = dict(quantization=quantization, min_area=min_area, per_class=per_class)

    def __call__(self, image, stem, output):
        """uint8 RGB (H, W, 3) -> train-id labels (H, W); writes the instance files."""
        from PIL import Image

        from tfseg.arrays import pad_to_stride
        from tfseg.data import normalize
        from tfseg.instance.postprocess import centres_to_instances, instance_overlay

        h, w = image.shape[:2]
        x = pad_to_stride(np.asarray(normalize(image.astype(np.float32))), self.stride)
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


def _postprocess(options):
    """``evaluate_instances`` keyword arguments from an ``InstanceConfig``."""
    return dict(
        quantization=options.quantization,
        min_area=options.min_instance_area,
        per_class=options.per_class,
    )


class InstanceTask(SemanticTask):
    """Instance segmentation with SSN's instance module (``--task=instance``)."""

    name = "instance"
    description = (
        "adds the SSN instance module (second output: centres) and its loss, scored by AP; needs "
        "*_instanceIds.png ground truth (datasets that have it), see docs/instance.md"
    )
    heads = ("instance",)
    trainable_kinds = ("logits", "aux", "instance")
    required_kinds = ("logits", "instance")
    saved_kinds = ("logits", "instance")
    target_kinds = ("instance",)
    section = "instance"
    options = InstanceConfig

    def check_config(self, config):
        """The semantic checks, and a dataset with instanceIds ground truth."""
        from tfseg.data import list_datasets

        super().check_config(config)
        with_instances = list_datasets(has_instances=True)
        if config.data.dataset not in with_instances:
            raise ValueError(
                f"--task=instance needs Cityscapes-format instanceIds ground truth "
                f"(--dataset={' or '.join(with_instances)}), not --dataset={config.data.dataset}"
            )

    def head_kwargs(self, config):
        """The instance head's options from ``config.instance``."""
        ic = config.instance
        return {
            "instance": dict(
                iterations=ic.iterations, offset_scale=ic.offset_scale, stride=ic.stride
            )
        }

    def extra_targets(self, config):
        """The centre targets made from the instanceIds maps."""
        from tfseg.instance.data import instance_centre_target

        return (instance_centre_target(),)

    def train_dataset(self, config, spec, stage, *, output_kinds, static_shape=True):
        """The semantic pipeline with centre targets (every image must have its instanceIds)."""
        from tfseg.instance.data import instance_examples

        instance_examples(spec, config.data.train_split)  # every image has its instanceIds file
        return super().train_dataset(
            config, spec, stage, output_kinds=output_kinds, static_shape=static_shape
        )

    def logits_weight(self, config):
        """``--semantic_loss_weight``."""
        return float(config.instance.semantic_loss_weight)

    def head_loss(self, kind, config):
        """The centre loss and ``--instance_loss_weight`` for the ``instance`` output."""
        from tfseg.instance.module import InstanceCentreLoss

        if kind != "instance":
            return super().head_loss(kind, config)
        return InstanceCentreLoss(config.instance.loss), float(config.instance.loss_weight)

    def final_metrics(self, model, spec, config):
        """``val_instance``: AP / AP50 (per class and mean) on the validation split, printed."""
        split = config.data.val_split
        options = EvalOptions(split=split, verbose=False)
        result = self.evaluate(model, spec, options, config.instance)
        print(self.report(result, f"{model.name} instances on {spec.name}/{split}"))
        result.pop("ap_matrix", None)
        return {"val_instance": result}

    def evaluate(self, model, spec, options, task_options=None):
        """AP / AP50 at full resolution with the post-processing of ``task_options``."""
        from tfseg.instance.evaluation import evaluate_instances
        from tfseg.instance.model import require_instance_head

        if tuple(options.scales) != (1.0,) or options.flip or options.scale != 1.0:
            raise ValueError(
                "--task=instance evaluates at full resolution: drop --scales/--flip/--scale"
            )
        require_instance_head(model)
        return evaluate_instances(
            model,
            spec,
            options.split,
            max_images=options.max_images,
            save_predictions=options.save_predictions,
            verbose=options.verbose,
            **_postprocess(task_options or InstanceConfig()),
        )

    def report(self, result, title):
        """The AP table and the network / post-processing times."""
        from tfseg.instance.evaluation import format_ap_table

        return (
            f"{format_ap_table(result, title=title)}\n{result['seconds']:.1f}s; network "
            f"{result['ms_per_image']:.1f} ms/image, post-processing "
            f"{result['postprocess_ms_per_image']:.1f} ms/image"
        )

    def prediction_writer(self, model, task_options=None):
        """An ``InstanceOverlayWriter`` with the post-processing of ``task_options``."""
        return InstanceOverlayWriter(model, **_postprocess(task_options or InstanceConfig()))

