"""Frozen configuration dataclasses with a JSON round trip.

The programs turn their absl flags into one ``Config`` (see ``tfseg.train.config_from_flags``);
library code takes the config (or plain arguments), never ``FLAGS``. ``config.json`` in a run
directory is ``Config.to_json()``; ``Config.from_json`` reads it back, also the older layout written
by earlier runs (loss options inside ``train``, the progressive schedule as text,
``instance.enabled`` instead of ``task``).

Task sections (``InstanceConfig``) describe their command-line options in field metadata
(``option(...)``): the programs define one flag per field from it, so a new task's options need no
program changes.
"""

import dataclasses
import json
from typing import Optional, Tuple

from tfseg.arrays import parse_size  # noqa: F401  (re-exported: tfseg.config.parse_size)
from tfseg.data.progressive import Stage, parse_schedule
from tfseg.instance.module import INSTANCE_LOSSES


def option(default, flag, help, *, choices=None, lower_bound=None, group="train"):
    """A dataclass field that is also a command-line option ``--flag`` (see ``option_fields``).

    ``group``: ``"train"`` (only ``tfseg.train``) or ``"postprocess"`` (also ``tfseg.evaluate`` and
    ``tfseg.predict``).
    """
    meta = dict(flag=flag, help=help, choices=choices, lower_bound=lower_bound, group=group)
    return dataclasses.field(default=default, metadata=meta)


def option_fields(cls, groups=None):
    """The ``option`` fields of dataclass ``cls`` (of the given ``groups``, default all)."""
    return [
        f
        for f in dataclasses.fields(cls)
        if "flag" in f.metadata and (groups is None or f.metadata["group"] in groups)
    ]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "skipnet"
    encoder: Optional[str] = "mobilenet"
    encoder_kwargs: dict = dataclasses.field(default_factory=dict)
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    encoder_weights: Optional[str] = None
    init_model: Optional[str] = None
    heads: Tuple[str, ...] = ()  # extra outputs to train (e.g. "aux"); a task may add its own


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"
    data_dir: str = "data/synthetic"
    dataset_options: dict = dataclasses.field(default_factory=dict)
    crop_size: Tuple[int, int] = (256, 256)
    min_scale: float = 0.5
    max_scale: float = 2.0
    flip: bool = True
    color_jitter: bool = True
    batch_size: int = 8
    eval_scale: float = 1.0
    train_split: str = "train"
    val_split: str = "val"
    cache_images: bool = False  # decode the training split once, keep it in RAM


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    run_dir: str = "runs/default"
    epochs: int = 10
    steps_per_epoch: Optional[int] = None
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "poly"  # constant|poly|cosine|linear|onecycle (tfseg.training.schedules)
    poly_power: float = 0.9
    warmup_epochs: float = 0.0  # linear warm-up (onecycle: its rising phase), as a share of epochs
    clip_norm: Optional[float] = None  # global-norm gradient clipping
    ema_decay: float = 0.0  # EMA of the weights (tfseg.training.ema); 0 = off
    ema_ramp: bool = False  # decay min(ema_decay, step / total_steps), the reference zoo's ramp
    precision: str = "float32"  # or mixed_float16 / mixed_bfloat16 (tfseg.training.precision)
    distribute: str = "none"  # none | mirrored | multi_worker (tfseg.training.distribute)
    sync_bn: bool = False  # BatchNorm statistics over the global batch
    # knowledge distillation (tfseg.training.distill): a frozen teacher model and its loss
    teacher_model: Optional[str] = None
    kd_loss: str = "kl"  # kl | mse | cwd
    kd_temperature: float = 4.0
    kd_weight: float = 1.0
    kd_pixels: str = "labelled"  # labelled | all: where the distillation loss is averaged
    # quantization-aware fine-tuning of the --init_model (tfseg.training.qat)
    qat: bool = False
    seed: int = 0
    resume: bool = False
    val_every: int = 1
    max_val_images: Optional[int] = None
    # progressive resizing (tfseg.data.progressive): the parsed stages; () = off
    progressive_schedule: Tuple[Stage, ...] = ()


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The semantic loss (``tfseg.losses``) and the weights of the auxiliary and detail outputs."""

    name: str = "ce"
    class_weights: Optional[str] = None  # a JSON file, "auto" or None
    ohem_threshold: float = 0.6
    ohem_min_kept: int = 5000
    label_relaxation_kernel: int = 0  # 0 = off; resolved (progressive resizing turns it on)
    aux_weights: Tuple[float, ...] = ()  # one per aux output, or one for all; () = 1.0 each
    detail_weight: float = 1.0  # the detail output's (--heads=detail, tfseg.detail_loss)


# --- task sections --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    """``--task=instance``: the SSN instance module, its loss and the post-processing
    (docs/instance.md)."""

    iterations: int = option(
        30, "instance_iterations", "Sampling iterations t of the instance module (paper: 30).",
        lower_bound=1,
    )  # fmt: skip
    loss: str = option("l2", "instance_loss", "Centre regression loss.", choices=INSTANCE_LOSSES)
    loss_weight: float = option(
        1.0, "instance_loss_weight", "Weight of the instance loss.", lower_bound=0.0
    )
    semantic_loss_weight: float = option(
        1.0, "semantic_loss_weight", "Weight of the semantic loss (instance task).", lower_bound=0.0
    )
    offset_scale: float = option(
        1.0, "instance_offset_scale",
        "One guidance-offset unit in pixels of the module's resolution (tanh range x this).",
        lower_bound=1e-3,
    )  # fmt: skip
    stride: int = option(
        8, "instance_stride", "Stride of the feature map the module reads.", lower_bound=1
    )
    quantization: float = option(
        4.0, "instance_quantization",
        "Bin size (pixels) that quantises predicted centres into instance ids.",
        lower_bound=1e-3, group="postprocess",
    )  # fmt: skip
    min_instance_area: int = option(
        50, "min_instance_area",
        "Instances with fewer pixels are dropped (the paper's area threshold).",
        lower_bound=0, group="postprocess",
    )  # fmt: skip
    per_class: bool = option(
        False, "instance_per_class",
        "Group pixels by (class, centre bin) instead of by centre bin with a majority class.",
        group="postprocess",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    task: str = "semantic"  # a name in tfseg.tasks.TASKS
    instance: InstanceConfig = dataclasses.field(default_factory=InstanceConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        d = _upgrade(d)
        data = dict(d.get("data", {}))
        if "crop_size" in data:
            data["crop_size"] = tuple(data["crop_size"])
        model = dict(d.get("model", {}))
        model["heads"] = tuple(model.get("heads", ()))
        train = dict(d.get("train", {}))
        train["progressive_schedule"] = _stages(train.get("progressive_schedule"))
        loss = dict(d.get("loss", {}))
        loss["aux_weights"] = tuple(float(w) for w in loss.get("aux_weights", ()))
        return cls(
            model=ModelConfig(**model),
            data=DataConfig(**data),
            train=TrainConfig(**train),
            loss=LossConfig(**loss),
            task=d.get("task", "semantic"),
            instance=InstanceConfig(**d.get("instance", {})),
        )

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


# Loss options that config.json files written before ``LossConfig`` kept in ``train``.
_OLD_LOSS_KEYS = {
    "loss": "name",
    "class_weights": "class_weights",
    "ohem_threshold": "ohem_threshold",
    "ohem_min_kept": "ohem_min_kept",
    "label_relaxation_kernel": "label_relaxation_kernel",
}


def _upgrade(d):
    """A config dict of an older layout in the current one (a copy; current ones pass unchanged)."""
    d = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    train = d.setdefault("train", {})
    loss = d.setdefault("loss", {})
    for old, new in _OLD_LOSS_KEYS.items():
        if old in train:
            loss.setdefault(new, train.pop(old))
    train.pop("label_relaxation_targets", None)  # removed: the targets are always made on device
    instance = d.setdefault("instance", {})
    if instance.pop("enabled", False):
        d.setdefault("task", "instance")
    return d


def _stages(value):
    """``progressive_schedule`` from JSON: stages as dicts or lists, or the older text form."""
    if value is None or isinstance(value, str):
        return parse_schedule(value)
    return tuple(Stage(**s) if isinstance(s, dict) else Stage(*s) for s in value)


