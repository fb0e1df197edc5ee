"""Progressive resizing (RGPNet section 3.2): train on small images first, full size at the end.

A schedule is a list of stages, written ``"epoch:scale[:batch_mult],..."``, e.g. the paper's
green-AI run over 15 epochs (1/4 size for epochs 1-9, 1/2 for 10-12, full size for 13-15)::

    --progressive_schedule=0:0.25,9:0.5,12:1.0

``epoch`` is the 0-based epoch at which the stage starts (the first stage starts at 0), ``scale``
the image size factor of the stage and ``batch_mult`` an optional batch-size factor (e.g.
``0:0.25:4`` trains the 1/4 stage with 4x the batch and a quarter of the steps per epoch). Each
epoch sees the same number of images whatever the stage; the poly learning rate decays over the
schedule's total number of steps. Images are resized bilinearly and labels by nearest neighbour,
and the crop is scaled with the image (rounded to a multiple of the model's stride); see
``tfseg.data.pipeline.make_train_dataset(image_scale=...)``.
"""

import dataclasses
import math

#: Label-relaxation kernel turned on with progressive resizing unless given explicitly. The RGPNet
#: paper does not state its k; 3 is the smallest window that marks both sides of a boundary.
DEFAULT_RELAXATION_KERNEL = 3


@dataclasses.dataclass(frozen=True)
class Stage:
    start_epoch: int
    scale: float
    batch_mult: float = 1.0


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """One stage as it runs: epochs ``[start, end)``, crop ``(h, w)``, batch size, steps/epoch."""

    index: int
    start: int
    end: int
    scale: float
    crop_size: tuple
    batch_size: int
    steps_per_epoch: int

    @property
    def epochs(self):
        return self.end - self.start


def parse_schedule(text):
    """``"0:0.25,4:0.5,8:1.0"`` (or with ``:batch_mult``) -> tuple of :class:`Stage`.

    Raises ``ValueError`` naming the bad item for anything else; ``""`` / ``None`` gives ``()``
    (no progressive resizing).
    """
    if text is None or not str(text).strip():
        return ()
    form = "epoch:scale[:batch_mult],... (e.g. 0:0.25,4:0.5,8:1.0)"
    stages = []
    for item in str(text).split(","):
        parts = item.strip().split(":")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            start = float(parts[0])
            scale = float(parts[1])
            mult = float(parts[2]) if len(parts) == 3 else 1.0
            if start != int(start):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"progressive schedule item {item.strip()!r} is not {form}; got {text!r}"
            ) from None
        if start < 0 or not (math.isfinite(scale) and scale > 0):
            raise ValueError(
                f"progressive schedule item {item.strip()!r}: need epoch >= 0 and scale > 0"
            )
        if not (math.isfinite(mult) and mult > 0):
            raise ValueError(f"progressive schedule item {item.strip()!r}: batch_mult must be > 0")
        stages.append(Stage(int(start), scale, mult))
    if stages[0].start_epoch != 0:
        raise ValueError(f"the first progressive stage must start at epoch 0, got {text!r}")
    starts = [s.start_epoch for s in stages]
    if any(b <= a for a, b in zip(starts, starts[1:])):
        raise ValueError(f"progressive stage epochs must increase strictly, got {text!r}")
    return tuple(stages)


def format_schedule(stages):
    """Inverse of :func:`parse_schedule`."""
    return ",".join(
        f"{s.start_epoch}:{s.scale:g}" + (f":{s.batch_mult:g}" if s.batch_mult != 1 else "")
        for s in stages
    )


def stage_index(stages, epoch):
    """Index of the stage that 0-based ``epoch`` belongs to."""
    index = 0
    for i, s in enumerate(stages):
        if s.start_epoch <= epoch:
            index = i
    return index


def stage_crop_size(crop_size, scale, multiple=32):
    """Crop ``(h, w)`` of a stage: ``crop * scale`` rounded to a multiple of ``multiple`` (at least
    one multiple); the crop is unchanged at scale 1."""
    if scale == 1:
        return tuple(int(c) for c in crop_size)
    return tuple(max(multiple, int(round(c * scale / multiple)) * multiple) for c in crop_size)


def stage_batch_size(batch_size, batch_mult):
    return max(1, int(round(batch_size * batch_mult)))


def plan(stages, *, epochs, batch_size, steps_per_epoch, crop_size, multiple=32):
    """The stages as they run over ``epochs`` epochs -> list of :class:`StagePlan`.

    ``steps_per_epoch`` is the number of steps at batch size ``batch_size``; a stage with another
    batch size runs ``steps_per_epoch * batch_size // stage_batch`` steps (at least 1), so every
    epoch sees the same number of images. Without stages: one full-size stage.
    """
    stages = tuple(stages) or (Stage(0, 1.0),)
    if stages[-1].start_epoch >= epochs and len(stages) > 1:
        raise ValueError(
            f"progressive stage at epoch {stages[-1].start_epoch} starts after the last epoch "
            f"(epochs are 0..{epochs - 1}); shorten the schedule or raise --epochs"
        )
    images = steps_per_epoch * batch_size
    plans = []
    for i, s in enumerate(stages):
        end = stages[i + 1].start_epoch if i + 1 < len(stages) else epochs
        bs = stage_batch_size(batch_size, s.batch_mult)
        plans.append(
            StagePlan(
                index=i,
                start=s.start_epoch,
                end=end,
                scale=s.scale,
                crop_size=stage_crop_size(crop_size, s.scale, multiple),
                batch_size=bs,
                steps_per_epoch=max(1, images // bs),
            )
        )
    return plans


def total_steps(plans):
    """Optimizer steps over the whole schedule (what the poly learning rate decays over)."""
    return sum(p.epochs * p.steps_per_epoch for p in plans)


def relative_cost(stages, epochs):
    """Theoretical training cost of the schedule relative to full size: mean over epochs of
    ``scale**2`` (RGPNet: 1/16 * 9/15 + 1/4 * 3/15 + 3/15 = 0.2875 for ``0:0.25,9:0.5,12:1``)."""
    stages = tuple(stages) or (Stage(0, 1.0),)
    return sum(stages[stage_index(stages, e)].scale ** 2 for e in range(epochs)) / epochs
