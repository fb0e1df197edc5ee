"""The tiny training run of the training tests: a quarter-width SkipNet-MobileNet on a small
synthetic set, 64x64 crops, batch 4 (two steps per epoch of eight images)."""

from tfseg.config import Config, DataConfig, ModelConfig, TrainConfig


def tiny_config(tmp, run, epochs, synth, *, color_jitter=True, model=None, **train):
    """``Config`` of a run in ``tmp / run`` on the synthetic set ``synth`` generated in
    ``tmp / "data"``; ``model`` a ``ModelConfig`` (default: the quarter-width SkipNet-MobileNet);
    ``train`` overrides ``TrainConfig`` fields (``resume=True`` by default)."""
    train.setdefault("resume", True)
    quarter = {"alpha": 0.25}
    model = model or ModelConfig(name="skipnet", encoder="mobilenet", encoder_kwargs=quarter)
    return Config(
        model=model,
        data=DataConfig(
            dataset="synthetic",
            data_dir=str(tmp / "data"),
            dataset_options=synth,
            crop_size=(64, 64),
            batch_size=4,
            color_jitter=color_jitter,
        ),
        train=TrainConfig(run_dir=str(tmp / run), epochs=epochs, **train),
    )
