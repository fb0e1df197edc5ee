"""Instance segmentation by iterative spatial sampling (SSN paper, sec. 4).

- ``targets``: instance-centre targets from Cityscapes instanceIds maps.
- ``module``: the Instance Segmentation Module (iterative sampler, guided upsampling) and its loss;
  ``tfseg.models.heads`` registers it as the ``instance`` head of ``build_model``.
- ``model``: ``build_instance_model`` (``build_model(..., heads=("instance",))``) and helpers that
  read a two-output model.
- ``data``: training pipeline yielding semantic labels and centre targets.
- ``postprocess``: centres -> instance masks with class and confidence.
- ``evaluation``: Cityscapes-style AP / AP50 and the run over a dataset split.
"""

from tfseg.instance.module import (
    InstanceCentreLoss,
    InstanceSampling,
    InstanceUpsample,
    instance_head,
    instance_loss,
    iterative_sampling,
)
from tfseg.instance.targets import THING_LABEL_IDS, THING_TRAIN_IDS, instance_targets

__all__ = [
    "THING_LABEL_IDS",
    "THING_TRAIN_IDS",
    "InstanceCentreLoss",
    "InstanceSampling",
    "InstanceUpsample",
    "instance_head",
    "instance_loss",
    "instance_targets",
    "iterative_sampling",
]
