"""The model of a run: built by the task (with encoder weights or ``--init_model``), or loaded from
the checkpoint of a resumed run."""

from tfseg.models.saving import load_model
from tfseg.training.run_dir import TrainingError


def build_from_config(config, task, num_classes, input_shape=(None, None, 3)):
    """``task``'s model for ``config``, initialised from ``encoder_weights`` / ``init_model`` when
    the config names them."""
    mc = config.model
    model = task.build_model(config, num_classes, input_shape)
    if mc.encoder_weights:
        from tfseg.encoders.weights import load_encoder_weights

        n = load_encoder_weights(model, mc.encoder, mc.encoder_weights, **mc.encoder_kwargs)
        print(f"loaded {n} encoder weight tensors from {mc.encoder_weights}")
        for note in getattr(n, "notes", ()):  # e.g. PyTorch checkpoints: BatchNorm epsilon set
            print(note)
    if mc.init_model:
        n = init_from_model(model, mc.init_model)
        print(f"initialised {n} weight tensors from {mc.init_model}")
    return model


def init_from_model(model, path):
    """Copy every weight of the ``.keras`` model at ``path`` into ``model``, layer by layer (by
    name).

    Both must have the same architecture (same layer names and weight shapes), as
    ``tools/transfer_head.py`` writes it; any difference is an error naming the layers.
    """
    from tfseg.encoders.weights import copy_weights_by_name

    source = {layer.name: layer for layer in load_model(path).layers}
    report = copy_weights_by_name(source, model, strict=False, nested=False)
    if not report.complete:
        raise TrainingError(
            f"--init_model={path} does not match the model being trained ({model.name}): "
            + report.describe(source="the file")
        )
    return report.tensors


def load_checkpoint(path):
    """Load ``path`` with its compile state (optimizer variables, schedule, losses)."""
    import tfseg.training.optimizer  # noqa: F401  (registers ReplicaMeanLoss)
    import tfseg.training.qat  # noqa: F401  (registers the fake-quant layers of --qat runs)

    model = load_model(path, compile=True)
    if model.optimizer is None:
        raise TrainingError(f"checkpoint {path} has no optimizer state to resume from")
    return model
