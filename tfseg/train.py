"""Train a segmentation model:
``python -m tfseg.train --flagfile=configs/quickstart.cfg [--flag=v]``.

Writes into ``--run_dir``: ``config.json`` (the resolved config), ``checkpoints/last.keras`` and
``checkpoints/best.keras`` (written atomically; ``--resume`` continues epoch count, optimizer and
learning-rate schedule), ``checkpoints/state.json``, ``logs/`` (TensorBoard), ``model.keras`` (best
on val mIoU, without optimizer state) and ``metrics.json``.
"""

import json
import os
import sys

from absl import app, flags

import tfseg  # noqa: F401  (fills the registries used by the enum flags)
from tfseg.cli import define_task_flags, given_option_flags, task_options_from_flags
from tfseg.config import Config, DataConfig, LossConfig, ModelConfig, TrainConfig, parse_size
from tfseg.data.progressive import DEFAULT_RELAXATION_KERNEL
from tfseg.models import list_models, resolve_encoder, takes_encoder
from tfseg.registry import DATASETS, ENCODERS, MODELS, TASKS
from tfseg.training.schedules import KINDS as SCHEDULES

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Define the training flags on ``fv`` (a fresh ``flags.FlagValues()`` in tests)."""
    import tfseg.data  # noqa: F401  (registers the datasets)
    from tfseg.tasks import all_tasks

    d = ModelConfig()
    flags.DEFINE_enum(
        "model",
        d.name,
        list_models(),
        "Decoder (with --encoder) or complete network.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "encoder",
        d.encoder,
        ENCODERS.names(),
        "Encoder of a decoder model, or of a complete network built on one (default: the "
        "network's own, e.g. resnet18 for linknet).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "encoder_kwargs", "{}", 'Encoder options as JSON, e.g. {"alpha": 0.5}.', flag_values=fv
    )
    flags.DEFINE_string("model_kwargs", "{}", "Decoder / network options as JSON.", flag_values=fv)
    flags.DEFINE_list(
        "heads",
        [],
        "Extra outputs to train besides the logits, e.g. aux (the auxiliary heads of networks "
        "that have them; loss weights: --aux_weights). Evaluation, prediction and model.keras use "
        "the main logits.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "encoder_weights",
        None,
        "Encoder weights: a local .weights.h5 / legacy .h5 file, a torchvision state dict "
        "(.pth/.pt/.bin with torch installed, or .safetensors; resnet50/101 and mobilenetv2 need "
        "--encoder_kwargs='{\"layout\": \"torchvision\"}'), or imagenet.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "init_model",
        None,
        "Initialise every weight from this .keras model of the same architecture (e.g. the output "
        "of tools/transfer_head.py, RGPNet's Mapillary->Cityscapes step).",
        flag_values=fv,
    )
    dd = DataConfig()
    flags.DEFINE_enum("dataset", dd.dataset, DATASETS.names(), "Dataset.", flag_values=fv)
    flags.DEFINE_string(
        "data_dir", dd.data_dir, "Dataset root (synthetic: generated there once).", flag_values=fv
    )
    flags.DEFINE_string(
        "dataset_options",
        "{}",
        'Dataset options as JSON, e.g. {"num_train": 100} or {"num_classes": 5}.',
        flag_values=fv,
    )
    flags.DEFINE_string("crop_size", "256x256", "Training crop HxW.", flag_values=fv)
    flags.DEFINE_float("min_scale", dd.min_scale, "Random scale lower bound.", flag_values=fv)
    flags.DEFINE_float("max_scale", dd.max_scale, "Random scale upper bound.", flag_values=fv)
    flags.DEFINE_bool("flip", dd.flip, "Random horizontal flip.", flag_values=fv)
    flags.DEFINE_bool(
        "color_jitter",
        dd.color_jitter,
        "Brightness/contrast/saturation/hue jitter.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "batch_size", dd.batch_size, "Training batch size.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_float(
        "eval_scale",
        dd.eval_scale,
        "Resize factor of validation images (labels nearest).",
        lower_bound=0.05,
        flag_values=fv,
    )
    flags.DEFINE_string("train_split", dd.train_split, "Training split.", flag_values=fv)
    flags.DEFINE_string("val_split", dd.val_split, "Validation split.", flag_values=fv)
    flags.DEFINE_bool(
        "cache_images",
        dd.cache_images,
        "Decode the training images and labels once and keep them in memory (H*W*4 bytes per "
        "image): same batches, less CPU per epoch; for data sets that fit in RAM.",
        flag_values=fv,
    )
    t = TrainConfig()
    flags.DEFINE_string("run_dir", t.run_dir, "Output directory of the run.", flag_values=fv)
    flags.DEFINE_integer("epochs", t.epochs, "Number of epochs.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer(
        "steps_per_epoch",
        None,
        "Steps per epoch (default: one pass).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "optimizer", t.optimizer, ["adam", "adamw", "sgd"],
        "Optimizer (weight decay decoupled in all three).", flag_values=fv,
    )
    flags.DEFINE_float(
        "learning_rate", t.learning_rate, "Initial learning rate.", lower_bound=0.0, flag_values=fv
    )
    flags.DEFINE_float("momentum", t.momentum, "SGD momentum.", flag_values=fv)
    flags.DEFINE_float(
        "weight_decay", t.weight_decay, "Decoupled weight decay.", lower_bound=0.0, flag_values=fv
    )
    flags.DEFINE_enum(
        "lr_schedule",
        t.lr_schedule,
        list(SCHEDULES),
        "LR schedule, stepped per iteration (tfseg.training.schedules): onecycle is PyTorch's "
        "OneCycleLR, the reference zoo's cos_warmup with --warmup_epochs=3.",
        flag_values=fv,
    )
    flags.DEFINE_float("poly_power", t.poly_power, "Power of the poly schedule.", flag_values=fv)
    flags.DEFINE_float(
        "warmup_epochs", t.warmup_epochs,
        "Epochs of warm-up (linear from ~0; onecycle: its rising phase).", lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_float(
        "clip_norm", t.clip_norm, "Clip gradients to this global norm (default: off).",
        lower_bound=0.0, flag_values=fv,
    )
    flags.DEFINE_float(
        "ema_decay", t.ema_decay,
        "Keep an exponential moving average of the weights with this decay (e.g. 0.999; 0: off); "
        "validation, best.keras and model.keras use it.", lower_bound=0.0, upper_bound=1.0,
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "ema_ramp", t.ema_ramp,
        "EMA decay min(--ema_decay, step / total steps): the reference zoo's ramp (with "
        "--ema_decay=1 exactly its cur_itr / total_itrs).", flag_values=fv,
    )
    flags.DEFINE_enum(
        "precision", t.precision, ["float32", "mixed_float16", "mixed_bfloat16"],
        "Compute precision of training (weights, logits and losses stay float32; float16 with "
        "loss scaling). model.keras is always stored float32.", flag_values=fv,
    )
    flags.DEFINE_enum(
        "distribute", t.distribute, ["none", "mirrored", "multi_worker"],
        "mirrored: every local GPU (tf.distribute.MirroredStrategy); multi_worker: several "
        "processes / machines set up by TF_CONFIG (MultiWorkerMirroredStrategy; only the chief "
        "writes). --batch_size is the global batch (README: Training on several machines).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "sync_bn", t.sync_bn,
        "BatchNorm statistics over the global batch of every replica (synchronised BN).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "teacher_model", None,
        "Distil from this trained tfseg .keras model (frozen, inference mode): adds --kd_loss "
        "between its logits and the student's (docs/training.md).", flag_values=fv,
    )
    flags.DEFINE_enum(
        "kd_loss", t.kd_loss, ["kl", "mse", "cwd"],
        "Distillation loss: kl (Hinton, per pixel, x T^2), mse (logits), cwd (channel-wise, Shu et "
        "al. 2021).", flag_values=fv,
    )
    flags.DEFINE_float(
        "kd_temperature", t.kd_temperature, "Softmax temperature T of kl and cwd.",
        lower_bound=1e-3, flag_values=fv,
    )
    flags.DEFINE_float(
        "kd_weight", t.kd_weight, "Weight of the distillation loss.", lower_bound=0.0,
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "kd_pixels", t.kd_pixels, ["labelled", "all"],
        "Pixels the distillation loss is averaged over: labelled (label != ignore) or all, so that "
        "images without labels in the train split (all ignore) are learnt from the teacher alone.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "qat", t.qat,
        "Quantization-aware fine-tuning of the trained model given as --init_model: int8 rounding "
        "of weights (per channel) and activations is simulated in the forward pass, BatchNorm is "
        "frozen; use a low --learning_rate and 1-2 epochs. Validation during the run is of the "
        "simulated int8 model; model.keras is the plain float model (export it with "
        "--format=tflite --precision=int8 as usual). docs/training.md.", flag_values=fv,
    )
    flags.DEFINE_integer(
        "seed", t.seed, "Random seed (data order, augmentation, init).", flag_values=fv
    )
    flags.DEFINE_bool(
        "resume", t.resume, "Continue from run_dir/checkpoints/last.keras.", flag_values=fv
    )
    flags.DEFINE_integer(
        "val_every",
        t.val_every,
        "Validate every N epochs (and at the end).",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "max_val_images",
        None,
        "Evaluate on at most N val images per epoch.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "progressive_schedule",
        "",
        "Progressive resizing: 'epoch:scale[:batch_mult],...', 0-based start epochs, e.g. "
        "0:0.25,9:0.5,12:1.0 (RGPNet). Empty: off.",
        flag_values=fv,
    )
    _define_loss_flags(fv)
    flags.DEFINE_enum(
        "task",
        "semantic",
        TASKS.names(),
        "What the model is trained for: "
        + "; ".join(f"{task.name}: {task.description}" for task in all_tasks())
        + ".",
        flag_values=fv,
    )
    define_task_flags(fv)  # each task's own options (tfseg.config.option fields)
    flags.adopt_module_key_flags(tfseg.cli, flag_values=fv)  # listed by --help


def _define_loss_flags(fv):
    """The semantic loss, OHEM, label relaxation and auxiliary-output weights (docs/training.md)."""
    import tfseg.losses

    d = LossConfig()
    flags.DEFINE_enum("loss", d.name, tfseg.losses.LOSSES.names(), "Loss.", flag_values=fv)
    flags.DEFINE_string(
        "class_weights",
        None,
        "JSON from tools/compute_class_weights.py, or auto: ENet weights of the training split, "
        "computed at the start and saved as run_dir/class_weights.json.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "ohem_threshold",
        d.ohem_threshold,
        "--loss=ohem: keep pixels whose probability for their label is below this.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "ohem_min_kept",
        d.ohem_min_kept,
        "--loss=ohem: keep at least this many (the hardest) valid pixels per batch.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "label_relaxation_kernel",
        None,
        "Label relaxation window k (odd; 0/1 = off). Default: "
        f"{DEFAULT_RELAXATION_KERNEL} with --progressive_schedule, else off.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "aux_weights",
        [],
        "--heads=aux: loss weight of each auxiliary output (comma list, one per output, or one "
        "value for all; default 1.0 each).",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "detail_weight",
        1.0,
        "--heads=detail: loss weight of the detail output (STDC's boundary head; "
        "tfseg.detail_loss; default 1.0).",
        lower_bound=0.0,
        flag_values=fv,
    )


def _json_flag(name, text):
    """``--name``'s JSON object as a dict (a ValueError naming the flag otherwise)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--{name} is not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--{name} must be a JSON object, got {text!r}")
    return value


def _schedule(fv):
    """``--progressive_schedule`` parsed (``()`` when off) and checked against ``--epochs``."""
    from tfseg.data.progressive import parse_schedule

    try:
        stages = parse_schedule(fv.progressive_schedule)
    except ValueError as e:
        raise ValueError(f"--progressive_schedule: {e}") from None
    if len(stages) > 1 and stages[-1].start_epoch >= fv.epochs:
        raise ValueError(
            f"--progressive_schedule={fv.progressive_schedule!r} has a stage at epoch "
            f"{stages[-1].start_epoch} but --epochs={fv.epochs} (epochs are 0..{fv.epochs - 1})"
        )
    return stages


def _aux_weights(fv):
    """``--aux_weights`` as a tuple of non-negative floats."""
    try:
        weights = tuple(float(w) for w in fv.aux_weights)
    except ValueError:
        raise ValueError(f"--aux_weights must be numbers, got {','.join(fv.aux_weights)}") from None
    if any(w < 0 for w in weights):
        raise ValueError(f"--aux_weights must be >= 0, got {','.join(fv.aux_weights)}")
    return weights


def loss_config_from_flags(fv, stages):
    """Validated ``LossConfig``; label relaxation defaults to on with progressive ``stages``."""
    from tfseg.losses import check_relaxation_kernel

    if fv.loss != "ohem":
        for name in ("ohem_threshold", "ohem_min_kept"):
            if fv[name].present:
                raise ValueError(f"--{name} needs --loss=ohem (got --loss={fv.loss})")
    if not 0.0 < fv.ohem_threshold <= 1.0:
        raise ValueError(f"--ohem_threshold must be in (0, 1], got {fv.ohem_threshold}")
    if fv.ohem_min_kept < 0:
        raise ValueError(f"--ohem_min_kept must be >= 0, got {fv.ohem_min_kept}")
    kernel = fv.label_relaxation_kernel
    if kernel is None:
        kernel = DEFAULT_RELAXATION_KERNEL if stages else 0
    try:
        kernel = check_relaxation_kernel(kernel)
    except ValueError as e:
        raise ValueError(f"--{e}") from None
    if fv.loss == "weighted_ce" and not fv.class_weights:
        raise ValueError(
            "--loss=weighted_ce needs --class_weights=FILE (tools/compute_class_weights.py)"
        )
    if fv["detail_weight"].present and "detail" not in fv.heads:
        raise ValueError("--detail_weight needs --heads=detail")
    if fv.class_weights and fv.class_weights != "auto" and not os.path.isfile(fv.class_weights):
        raise FileNotFoundError(f"--class_weights file not found: {fv.class_weights}")
    return LossConfig(
        name=fv.loss,
        class_weights=fv.class_weights,
        ohem_threshold=fv.ohem_threshold,
        ohem_min_kept=fv.ohem_min_kept,
        label_relaxation_kernel=kernel,
        aux_weights=_aux_weights(fv),
        detail_weight=fv.detail_weight,
    )


def task_sections_from_flags(fv):
    """``{"task": name, <section>: options}``: the chosen task's options from the flags; option
    flags of another task are an error."""
    from tfseg.tasks import all_tasks, get_task

    chosen = get_task(fv.task)
    sections = {"task": chosen.name}
    if chosen.options is not None:
        sections[chosen.section] = task_options_from_flags(fv, chosen)
    for task in all_tasks():
        if task.options not in (None, chosen.options):
            given = given_option_flags(fv, task.options)
            if given:
                raise ValueError(f"{', '.join(given)} need --task={task.name}")
    return sections


def _check_files(fv):
    """The weight files the flags name exist (``imagenet`` is not a file)."""
    if (
        fv.encoder_weights
        and fv.encoder_weights != "imagenet"
        and not os.path.isfile(fv.encoder_weights)
    ):
        raise FileNotFoundError(f"--encoder_weights file not found: {fv.encoder_weights}")
    if fv.init_model and not os.path.isfile(fv.init_model):
        raise FileNotFoundError(f"--init_model file not found: {fv.init_model}")


def config_from_flags(fv):
    """Pure function: absl flag values -> one frozen ``Config`` (validated, nothing written)."""
    from tfseg.tasks import get_task

    if fv.min_scale <= 0 or fv.max_scale < fv.min_scale:
        raise ValueError(f"need 0 < --min_scale <= --max_scale, got {fv.min_scale}, {fv.max_scale}")
    _check_files(fv)
    stages = _schedule(fv)
    config = Config(
        model=_model_config(fv),
        data=_data_config(fv),
        train=_train_config(fv, stages),
        loss=loss_config_from_flags(fv, stages),
        **task_sections_from_flags(fv),
    )
    get_task(config.task).check_config(config)
    return config


def _model_config(fv):
    """``ModelConfig`` from the model flags (``encoder``: the one the model is built on)."""
    encoder_kwargs = _json_flag("encoder_kwargs", fv.encoder_kwargs)
    model_kwargs = _json_flag("model_kwargs", fv.model_kwargs)
    if {"encoder", "encoder_kwargs"} & set(model_kwargs):
        raise ValueError("--model_kwargs: give the encoder as --encoder / --encoder_kwargs")
    if takes_encoder(fv.model):
        # a network's own encoder unless --encoder is given; decoders: --encoder (or its default)
        given = fv["encoder"].present or fv.model not in MODELS
        encoder = resolve_encoder(fv.model, fv.encoder if given else None)
    else:
        for flag in ("encoder", "encoder_kwargs", "encoder_weights"):
            if fv[flag].present:
                raise ValueError(f"--{flag}: model {fv.model!r} is a network without an encoder")
        encoder = None
    return ModelConfig(
        name=fv.model,
        encoder=encoder,
        encoder_kwargs=encoder_kwargs,
        model_kwargs=model_kwargs,
        encoder_weights=fv.encoder_weights,
        init_model=fv.init_model,
        heads=tuple(fv.heads),
    )


def _data_config(fv):
    """``DataConfig`` from the data flags."""
    return DataConfig(
        dataset=fv.dataset,
        data_dir=fv.data_dir,
        dataset_options=_json_flag("dataset_options", fv.dataset_options),
        crop_size=parse_size(fv.crop_size, "--crop_size"),
        min_scale=fv.min_scale,
        max_scale=fv.max_scale,
        flip=fv.flip,
        color_jitter=fv.color_jitter,
        batch_size=fv.batch_size,
        eval_scale=fv.eval_scale,
        train_split=fv.train_split,
        val_split=fv.val_split,
        cache_images=fv.cache_images,
    )


def _train_config(fv, stages):
    """``TrainConfig`` from the training flags and the parsed progressive ``stages``."""
    if not fv.teacher_model:
        for name in ("kd_loss", "kd_temperature", "kd_weight", "kd_pixels"):
            if fv[name].present:
                raise ValueError(f"--{name} needs --teacher_model")
    elif not os.path.isfile(fv.teacher_model):
        raise FileNotFoundError(f"--teacher_model file not found: {fv.teacher_model}")
    if fv.distribute == "multi_worker":
        from tfseg.training.distribute import parse_tf_config

        parse_tf_config(os.environ.get("TF_CONFIG", ""))  # a bad TF_CONFIG fails before anything
    if fv.qat and not (fv.init_model or fv.resume):
        raise ValueError(
            "--qat fine-tunes a trained model: give it as --init_model=PATH.keras (e.g. "
            "--init_model=runs/quickstart/model.keras)"
        )
    if fv.ema_ramp and not fv.ema_decay:
        raise ValueError("--ema_ramp needs --ema_decay (e.g. --ema_decay=1 for the zoo's ramp)")
    if fv.ema_decay == 1.0 and not fv.ema_ramp:
        raise ValueError("--ema_decay=1 never moves the average; add --ema_ramp or lower it")
    return TrainConfig(
        run_dir=fv.run_dir,
        epochs=fv.epochs,
        steps_per_epoch=fv.steps_per_epoch,
        optimizer=fv.optimizer,
        learning_rate=fv.learning_rate,
        momentum=fv.momentum,
        weight_decay=fv.weight_decay,
        lr_schedule=fv.lr_schedule,
        poly_power=fv.poly_power,
        warmup_epochs=fv.warmup_epochs,
        clip_norm=fv.clip_norm or None,
        ema_decay=fv.ema_decay,
        ema_ramp=fv.ema_ramp,
        precision=fv.precision,
        distribute=fv.distribute,
        sync_bn=fv.sync_bn,
        teacher_model=fv.teacher_model,
        kd_loss=fv.kd_loss,
        kd_temperature=fv.kd_temperature,
        kd_weight=fv.kd_weight,
        kd_pixels=fv.kd_pixels,
        qat=fv.qat,
        seed=fv.seed,
        resume=fv.resume,
        val_every=fv.val_every,
        max_val_images=fv.max_val_images,
        progressive_schedule=stages,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from tfseg.training import TrainingError, train

    try:
        config = config_from_flags(FLAGS)
        train(config)
    except (ValueError, FileNotFoundError, KeyError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
