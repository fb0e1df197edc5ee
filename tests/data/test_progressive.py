"""Progressive resizing: schedule parsing and plans, stage resizing in the pipeline, a tiny run that
switches sizes at the right epochs and resumes at the right stage, and the new training flags."""

import numpy as np
import pytest
from absl import flags

from tfseg import train as train_prog
from tfseg.config import Config, DataConfig, LossConfig, ModelConfig, TrainConfig
from tfseg.data.progressive import (
    Stage,
    format_schedule,
    parse_schedule,
    plan,
    relative_cost,
    stage_index,
    total_steps,
)

SYNTH = {"num_train": 8, "num_val": 2, "height": 64, "width": 128, "seed": 2}


# --------------------------------------------------------------------------------------------------
# schedule


def test_parse_schedule_and_paper_cost():
    stages = parse_schedule("0:0.25, 9:0.5,12:1.0")
    assert stages == (Stage(0, 0.25), Stage(9, 0.5), Stage(12, 1.0))
    assert parse_schedule(format_schedule(stages)) == stages
    assert parse_schedule("0:0.5:4,3:1")[0] == Stage(0, 0.5, 4.0)
    assert parse_schedule("") == () and parse_schedule(None) == ()
    # RGPNet Table 4: 1/16 * 9/15 + 1/4 * 3/15 + 3/15 = 0.2875 (3.48x)
    assert relative_cost(stages, 15) == pytest.approx(0.2875)
    assert [stage_index(stages, e) for e in (0, 8, 9, 11, 12, 14)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "text,match",
    [
        ("0:0.25,4", "'4' is not epoch:scale"),
        ("0:a", "'0:a' is not"),
        ("0:0.5:1:2", "is not"),
        ("1:0.5,3:1", "start at epoch 0"),
        ("0:0.5,4:0.75,4:1", "increase strictly"),
        ("0:0.5,2.5:1", "'2.5:1' is not"),
        ("0:0", "scale > 0"),
        ("0:-1", "scale > 0"),
        ("0:0.5:0", "batch_mult"),
    ],
)
def test_bad_schedules_name_the_culprit(text, match):
    with pytest.raises(ValueError, match=match):
        parse_schedule(text)


def test_plan_scales_crop_and_batch_and_keeps_images_per_epoch():
    plans = plan(
        parse_schedule("0:0.25:4,2:0.5,3:1"),
        epochs=5,
        batch_size=2,
        steps_per_epoch=8,
        crop_size=(256, 512),
    )
    assert [(p.start, p.end) for p in plans] == [(0, 2), (2, 3), (3, 5)]
    assert [p.crop_size for p in plans] == [(64, 128), (128, 256), (256, 512)]
    assert [p.batch_size for p in plans] == [8, 2, 2]
    assert [p.steps_per_epoch * p.batch_size for p in plans] == [16, 16, 16]
    assert total_steps(plans) == 2 * 2 + 1 * 8 + 2 * 8
    # crops are rounded to the stride multiple; no schedule = one full-size stage
    assert plan(
        (), epochs=3, batch_size=2, steps_per_epoch=4, crop_size=(100, 90)
    )[0].crop_size == (100, 90)
    odd = plan(
        parse_schedule("0:0.3,1:1"), epochs=2, batch_size=1, steps_per_epoch=1, crop_size=(100, 90)
    )
    assert odd[0].crop_size == (32, 32)
    with pytest.raises(ValueError, match="after the last epoch"):
        plan(
            parse_schedule("0:0.5,5:1"),
            epochs=5,
            batch_size=2,
            steps_per_epoch=4,
            crop_size=(64, 64),
        )


# --------------------------------------------------------------------------------------------------
# pipeline


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    from tfseg.data import get_dataset

    return get_dataset("synthetic", str(tmp_path_factory.mktemp("prog") / "data"), **SYNTH)


def test_stage_resize_is_bilinear_image_nearest_label(spec):
    from PIL import Image

    from tfseg.data import make_train_dataset, normalize

    ds = make_train_dataset(
        spec, "train", batch_size=2, crop_size=(32, 64), scale_range=(1.0, 1.0), flip=False,
        color_jitter=False, shuffle=False, image_scale=0.5,
    )
    image, label = next(iter(ds))
    assert image.shape == (2, 32, 64, 3) and label.shape == (2, 32, 64)
    for i, ex in enumerate(spec.examples("train")[:2]):
        raw = np.asarray(Image.open(ex.label))
        want = np.asarray(spec.lut)[raw][::2, ::2]
        np.testing.assert_array_equal(label[i].numpy(), want)
        full = np.asarray(Image.open(ex.image).convert("RGB"))
        np.testing.assert_allclose(image[i].numpy(), normalize(full[::2, ::2]), atol=0.05)


def test_unknown_static_shape(spec):
    from tfseg.data import make_train_dataset

    ds = make_train_dataset(
        spec, "train", batch_size=2, crop_size=(32, 32), image_scale=0.5, static_shape=False
    )
    assert ds.element_spec[0].shape.as_list() == [None, None, None, 3]
    assert ds.element_spec[1].shape.as_list() == [None, None, None]
    image, label = next(iter(ds))
    assert image.shape == (2, 32, 32, 3) and label.shape == (2, 32, 32)


# --------------------------------------------------------------------------------------------------
# a tiny progressive run, interrupted and resumed


class _Stop(Exception):
    pass


def _config(tmp, resume):
    return Config(
        model=ModelConfig(name="skipnet", encoder="mobilenet", encoder_kwargs={"alpha": 0.25}),
        data=DataConfig(
            dataset="synthetic", data_dir=str(tmp / "data"), dataset_options=SYNTH,
            crop_size=(64, 64), batch_size=2,
        ),
        train=TrainConfig(
            run_dir=str(tmp / "run"), epochs=4, learning_rate=1e-3, resume=resume,
            progressive_schedule=parse_schedule("0:0.5:2,2:1"), max_val_images=1, val_every=2,
        ),
        loss=LossConfig(name="ohem", ohem_min_kept=200, label_relaxation_kernel=3),
    )


@pytest.fixture(scope="module")
def progressive_run(tmp_path_factory):
    """Epochs 1-2 at half size with batch 4, epochs 3-4 at full size with batch 2; killed after
    epoch 1, then resumed. Records every fit call and the shapes of the batches it gets."""
    import keras

    from tfseg import training
    from tfseg.training.callbacks import EpochEnd

    tmp = tmp_path_factory.mktemp("progrun")
    calls = []
    original_fit = keras.Model.fit
    original_end = EpochEnd.on_epoch_end

    def fit(self, x, **kw):
        image, label = next(iter(x))
        calls.append(
            (
                kw["initial_epoch"],
                kw["epochs"],
                kw["steps_per_epoch"],
                tuple(image.shape),
                tuple(label.shape),
            )
        )
        return original_fit(self, x, **kw)

    def end(self, epoch, logs=None):
        original_end(self, epoch, logs)
        if epoch == 0 and not self.config.train.resume:
            raise _Stop()

    mp = pytest.MonkeyPatch()
    mp.setattr(keras.Model, "fit", fit)
    mp.setattr(EpochEnd, "on_epoch_end", end)
    try:
        with pytest.raises(_Stop):
            training.train(_config(tmp, resume=False))
        metrics = training.train(_config(tmp, resume=True))
    finally:
        mp.undo()
    return tmp, calls, metrics


def test_progressive_run_switches_sizes_at_the_right_epochs_and_resumes_in_stage(progressive_run):
    import keras

    tmp, calls, metrics = progressive_run
    assert calls == [
        (0, 2, 2, (4, 32, 32, 3), (4, 32, 32)),  # first run: stage 0 (killed after epoch 1)
        (1, 2, 2, (4, 32, 32, 3), (4, 32, 32)),  # resumed inside stage 0 ...
        (2, 4, 4, (2, 64, 64, 3), (2, 64, 64)),  # ... then stage 1 at full size
    ]
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]
    model = keras.models.load_model(tmp / "run" / "checkpoints" / "last.keras")
    assert int(model.optimizer.iterations.numpy()) == 2 * 2 + 2 * 4  # the planned total steps
    assert model.optimizer.learning_rate.numpy() == pytest.approx(0.0, abs=1e-9)  # poly reached 0
    stages = metrics["stages"]
    assert [s["stage"] for s in stages] == [0, 1] and stages[1]["crop_size"] == [64, 64]
    assert all(s["switch_seconds"] >= 0 for s in stages)
    assert metrics["val"]["miou"] >= 0 and np.isfinite(metrics["history"][-1]["loss"])


# --------------------------------------------------------------------------------------------------
# flags


def _parse(argv):
    fv = flags.FlagValues()
    train_prog.define_flags(fv)
    fv(["train"] + argv)
    return train_prog.config_from_flags(fv)


def test_new_flags_parse_into_config_and_round_trip():
    c = _parse([])
    assert (c.loss.name, c.loss.label_relaxation_kernel) == ("ce", 0)
    assert c.train.progressive_schedule == ()
    c = _parse(["--epochs=15", "--progressive_schedule=0:0.25, 9:0.5,12:1.0"])
    assert c.train.progressive_schedule == (Stage(0, 0.25), Stage(9, 0.5), Stage(12, 1.0))
    assert c.loss.label_relaxation_kernel == 3  # on by default with progressive resizing
    assert Config.from_json(c.to_json()) == c
    c = _parse(
        ["--epochs=15", "--progressive_schedule=0:0.25,9:0.5,12:1", "--label_relaxation_kernel=0"]
    )
    assert c.loss.label_relaxation_kernel == 0
    c = _parse(
        [
            "--loss=ohem",
            "--ohem_threshold=0.7",
            "--ohem_min_kept=100",
            "--label_relaxation_kernel=5",
        ]
    )
    lc = c.loss
    assert (lc.ohem_threshold, lc.ohem_min_kept, lc.label_relaxation_kernel) == (0.7, 100, 5)
    old = Config.from_dict({"train": {"epochs": 3}})  # a config.json from before these fields
    assert old.train.progressive_schedule == () and old.loss.ohem_min_kept == 5000


def test_config_json_of_older_runs_still_loads():
    """--resume reads config.json files written before LossConfig and the parsed schedule."""
    old = {
        "train": {
            "epochs": 15, "loss": "ohem", "class_weights": None, "ohem_threshold": 0.7,
            "ohem_min_kept": 100, "label_relaxation_kernel": 3,
            "label_relaxation_targets": "pipeline",
            "progressive_schedule": "0:0.25,9:0.5:2,12:1.0",
        },
        "model": {"name": "rgpnet", "encoder": "resnet18", "model_kwargs": {"downsample": True}},
        "instance": {"enabled": False, "iterations": 30},
    }  # fmt: skip
    c = Config.from_dict(old)
    assert (c.loss.name, c.loss.ohem_threshold, c.loss.ohem_min_kept) == ("ohem", 0.7, 100)
    assert c.loss.label_relaxation_kernel == 3 and c.task == "semantic"
    assert c.train.progressive_schedule == (Stage(0, 0.25), Stage(9, 0.5, 2.0), Stage(12, 1.0))
    assert Config.from_json(c.to_json()) == c


def test_rgpnet_downsample_is_a_model_kwarg():
    if "rgpnet" not in train_prog.list_models():
        pytest.skip("rgpnet decoder not registered")
    # the builder's default unless --model_kwargs says otherwise
    assert "downsample" not in _parse(["--model=rgpnet"]).model.model_kwargs
    c = _parse(["--model=rgpnet", '--model_kwargs={"downsample": false}'])
    assert c.model.model_kwargs == {"downsample": False}


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--progressive_schedule=0:0.25,x"], "progressive_schedule"),
        (["--progressive_schedule=0:0.25,9:1", "--epochs=9"], "epochs=9"),
        (["--label_relaxation_kernel=4"], "label_relaxation_kernel"),
        (["--label_relaxation_kernel=-1"], "label_relaxation_kernel"),
        (["--loss=ohem", "--ohem_threshold=1.5"], "ohem_threshold"),
        (["--loss=ohem", "--ohem_min_kept=-2"], "ohem_min_kept"),
        (["--ohem_min_kept=100"], "needs --loss=ohem"),
        (["--aux_weights=0.5"], "needs --heads=aux"),
        (["--heads=aux", "--aux_weights=x"], "aux_weights must be numbers"),
        (["--heads=instance"], "trains aux, detail heads"),
    ],
)
def test_bad_flag_values_raise_clear_errors(argv, match):
    with pytest.raises(ValueError, match=match):
        _parse(argv)
