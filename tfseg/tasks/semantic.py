"""The semantic task: per-pixel classes, scored by mIoU.

Trains the main logits with the configured loss (``LossConfig``) and every auxiliary output
(``--heads=aux``) with the same loss on the label map resized to the output (``ResizedLabelLoss``),
weighted by ``--aux_weights``, and a detail output (``--heads=detail``, STDC) with
``tfseg.detail_loss.DetailLoss`` on the label map, weighted by ``--detail_weight``.
``model.keras`` keeps the main logits only.
"""

from tfseg.tasks.base import Task

#: Output kinds whose target is the label map (resized to the output for ``aux``).
LABEL_KINDS = ("logits", "aux")
#: ... the distillation output (tfseg.training.distill), which reads only its ignored pixels, and
#: the detail output (tfseg.detail_loss), whose boundary targets come from the label map.
TARGET_IS_LABEL = (*LABEL_KINDS, "distill", "detail")


def semantic_loss(loss_config, *, ignore_label, class_weights=None):
    """The configured semantic loss (``tfseg.losses.make_loss``) from a ``LossConfig``."""
    from tfseg.losses import make_loss

    options = {"label_relaxation_kernel": loss_config.label_relaxation_kernel}
    if loss_config.name == "ohem":
        options.update(threshold=loss_config.ohem_threshold, min_kept=loss_config.ohem_min_kept)
    return make_loss(
        loss_config.name, ignore_label=ignore_label, class_weights=class_weights, **options
    )


def distillation_loss(config, ignore_label):
    """``(loss, weight)`` of the ``distill`` output (``--teacher_model``)."""
    from tfseg.losses import DistillationLoss

    tc = config.train
    loss = DistillationLoss(tc.kd_loss, tc.kd_temperature, ignore_label=ignore_label,
                            pixels=tc.kd_pixels)
    return loss, tc.kd_weight


def detail_loss(config):
    """``(loss, weight)`` of the ``detail`` output (``--heads=detail``, STDC's boundary head)."""
    from tfseg.detail_loss import DetailLoss

    return DetailLoss(), config.loss.detail_weight


def aux_weights(weights, count):
    """One weight per auxiliary output: ``()`` -> 1.0 each, one value -> that value for each."""
    weights = [float(w) for w in weights] or [1.0]
    if len(weights) == 1:
        return weights * count
    if len(weights) != count:
        raise ValueError(
            f"--aux_weights has {len(weights)} values but the model has {count} auxiliary outputs "
            f"(give one value for all, or one per output)"
        )
    return weights


def targets_per_output(ds, output_kinds, extra_kinds=()):
    """Map pipeline batches ``(image, label)`` / ``(image, (label, *extras))`` to one target per
    output of ``output_kinds``: the label for ``logits`` and ``aux`` outputs, the extra target of
    the same kind otherwise. Batches that already match pass unchanged (no extra map)."""
    output_kinds, extra_kinds = tuple(output_kinds), tuple(extra_kinds)
    if output_kinds == ("logits",) + extra_kinds:
        return ds

    def select(image, targets):
        label, *extras = targets if extra_kinds else (targets,)
        by_kind = {**dict(zip(extra_kinds, extras)), **{k: label for k in TARGET_IS_LABEL}}
        return image, tuple(by_kind[k] for k in output_kinds)

    return ds.map(select)


class LabelWriter:
    """``Task.prediction_writer`` of the semantic task: the argmax of the main logits, any image
    size (padded to the model's stride, cropped back)."""

    def __init__(self, model):
        from tfseg.evaluation import make_predict_fn
        from tfseg.models import model_stride
        from tfseg.models.outputs import logits_view

        self.predict = make_predict_fn(logits_view(model))
        self.stride = model_stride(model)

    def __call__(self, image, stem, output):
        from tfseg.evaluation import predict_image

        return predict_image(self.predict, image, self.stride)


class SemanticTask(Task):
    """Semantic segmentation (``--task=semantic``, the default)."""

    name = "semantic"
    description = "per-pixel classes, scored by mIoU (the default)"
    trainable_kinds = (*LABEL_KINDS, "detail")
    target_kinds = ()  # targets the pipeline yields after the label (``ExtraTarget`` kinds)

    def check_config(self, config):
        """``--heads`` the task trains; ``--aux_weights`` only with aux heads."""
        allowed = [k for k in self.trainable_kinds if k != "logits" and k not in self.heads]
        wrong = [h for h in config.model.heads if h not in allowed]
        if wrong:
            raise ValueError(
                f"--heads={','.join(wrong)}: --task={self.name} trains "
                f"{', '.join(allowed) or 'no extra'} heads (a task adds its own heads itself)"
            )
        if config.loss.aux_weights and "aux" not in config.model.heads:
            raise ValueError("--aux_weights needs --heads=aux")

    def head_kwargs(self, config):
        """``build_model``'s ``head_kwargs`` for the task's heads."""
        return {}

    def build_model(self, config, num_classes, input_shape=(None, None, 3)):
        """``build_model`` with the configured heads, then the task's own."""
        from tfseg.models import build_model

        mc = config.model
        return build_model(
            mc.name,
            num_classes,
            encoder=mc.encoder,
            input_shape=input_shape,
            encoder_kwargs=mc.encoder_kwargs,
            heads=tuple(mc.heads) + tuple(self.heads),
            head_kwargs=self.head_kwargs(config) or None,
            **mc.model_kwargs,
        )

    def extra_targets(self, config):
        """``tfseg.data.ExtraTarget`` entries of the pipeline, one per ``target_kinds``."""
        return ()

    def train_dataset(self, config, spec, stage, *, output_kinds, static_shape=True):
        """The stage's augmented pipeline with the task's extra targets; one target per output."""
        from tfseg.data import make_train_dataset

        dc = config.data
        ds = make_train_dataset(
            spec,
            dc.train_split,
            batch_size=stage.batch_size,
            crop_size=stage.crop_size,
            scale_range=(dc.min_scale, dc.max_scale),
            flip=dc.flip,
            color_jitter=dc.color_jitter,
            seed=config.train.seed + stage.index,
            image_scale=stage.scale,
            static_shape=static_shape,
            cache=dc.cache_images,
            extra_targets=self.extra_targets(config),
        )
        return targets_per_output(ds, output_kinds, self.target_kinds)

    def logits_weight(self, config):
        """Loss weight of the main logits."""
        return 1.0

    def head_loss(self, kind, config):
        """``(loss, weight)`` of an output of a kind other than ``logits`` / ``aux``."""
        raise ValueError(f"--task={self.name} has no loss for {kind!r} outputs")

    def losses(self, config, model, *, ignore_label, class_weights=None):
        """By output kind: logits and aux get the semantic loss (aux on resized labels), others
        ``head_loss``."""
        from tfseg.losses import ResizedLabelLoss
        from tfseg.models.outputs import output_kinds

        kinds = output_kinds(model)
        aux = aux_weights(config.loss.aux_weights, kinds.count("aux"))

        def loss():
            options = dict(ignore_label=ignore_label, class_weights=class_weights)
            return semantic_loss(config.loss, **options)

        pairs = []
        for kind in kinds:
            if kind == "logits":
                pairs.append((loss(), self.logits_weight(config)))
            elif kind == "aux":
                pairs.append((ResizedLabelLoss(loss()), aux.pop(0)))
            elif kind == "distill":
                pairs.append(distillation_loss(config, ignore_label))
            elif kind == "detail":
                pairs.append(detail_loss(config))
            else:
                pairs.append(self.head_loss(kind, config))
        return pairs

    def evaluate(self, model, spec, options, task_options=None):
        """mIoU of the main logits (multi-scale, flip, tiles as ``options`` say)."""
        from tfseg.evaluation import evaluate_model
        from tfseg.models.outputs import logits_view

        return evaluate_model(
            logits_view(model),
            spec,
            options.split,
            scales=options.scales,
            flip=options.flip,
            max_images=options.max_images,
            save_predictions=options.save_predictions,
            scale=options.scale,
            max_pixels=options.max_pixels,
            verbose=options.verbose,
        )

    def report(self, result, title):
        """The per-class IoU table and the speed."""
        from tfseg.evaluation import format_table

        rate = result["num_images"] / max(result["seconds"], 1e-9)
        return f"{format_table(result, title=title)}\n{result['seconds']:.1f}s, {rate:.2f} images/s"

    def prediction_writer(self, model, task_options=None):
        """A ``LabelWriter`` (no files of its own)."""
        return LabelWriter(model)

