"""Frozen configuration dataclasses with a JSON round trip.

The programs turn their absl flags into one ``Config`` (see ``tfseg.train.config_from_flags``);
library code takes the config (or plain arguments), never ``FLAGS``. ``config.json`` in a run
directory is ``Config.to_json()``; ``Config.from_json`` reads it back.
"""

import dataclasses
import json
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "skipnet"
    encoder: Optional[str] = "mobilenet"
    encoder_kwargs: dict = dataclasses.field(default_factory=dict)
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    encoder_weights: Optional[str] = None
    init_model: Optional[str] = None


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
    lr_schedule: str = "poly"
    poly_power: float = 0.9
    loss: str = "ce"
    class_weights: Optional[str] = None
    seed: int = 0
    resume: bool = False
    val_every: int = 1
    max_val_images: Optional[int] = None
    # RGPNet training features (tfseg.losses, tfseg.data.progressive; docs/training.md)
    ohem_threshold: float = 0.6
    ohem_min_kept: int = 5000
    label_relaxation_kernel: int = 0  # 0 = off; resolved (progressive resizing turns it on)
    progressive_schedule: str = ""  # "epoch:scale[:batch_mult],..."; "" = off


# --- instance task (tfseg.instance, docs/instance.md) ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    """``--task=instance``: the SSN instance module, its loss and the post-processing."""

    enabled: bool = False
    iterations: int = 30
    loss: str = "l2"
    loss_weight: float = 1.0
    semantic_loss_weight: float = 1.0
    offset_scale: float = 1.0
    stride: int = 8
    quantization: float = 4.0
    min_instance_area: int = 50
    per_class: bool = False


# --- end instance task ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    instance: InstanceConfig = dataclasses.field(default_factory=InstanceConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        data = dict(d.get("data", {}))
        if "crop_size" in data:
            data["crop_size"] = tuple(data["crop_size"])
        return cls(
            model=ModelConfig(**d.get("model", {})),
            data=DataConfig(**data),
            train=TrainConfig(**_train_fields(d.get("train", {}))),
            instance=InstanceConfig(**d.get("instance", {})),
        )

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


def _train_fields(train):
    """``train`` of a config.json without fields that were removed (``label_relaxation_targets``:
    the targets are always made on the device now)."""
    return {k: v for k, v in train.items() if k != "label_relaxation_targets"}


def parse_size(text, what="size"):
    """Parse ``"HxW"`` (or a single ``"S"`` for a square) into ``(H, W)`` positive ints."""
    try:
        parts = [int(p) for p in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise ValueError(f"{what} must look like HxW with positive integers (e.g. 512x1024), got {text!r}")
    return tuple(parts)
