"""Helpers shared by the export tests (a module of its own: conftest modules share one name)."""

import keras
import numpy as np

import tfseg


def randomize_batchnorm(model, seed=1):
    """Non-trivial BN statistics, so that folding them into the convolutions is really tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            weights = []
            for w, (lo, hi, kind) in zip(
                layer.get_weights(),
                [(0.5, 1.5, "u"), (0.0, 0.1, "n"), (0.0, 0.1, "n"), (0.5, 2.0, "u")],
            ):
                if kind == "u":
                    weights.append(rng.uniform(lo, hi, w.shape).astype(w.dtype))
                else:
                    weights.append((rng.standard_normal(w.shape) * hi).astype(w.dtype))
            layer.set_weights(weights)
    return model


def small_model(input_shape=(None, None, 3), seed=1):
    keras.utils.set_random_seed(seed)
    model = tfseg.build_model(
        "skipnet", 5, encoder="mobilenet", input_shape=input_shape, encoder_kwargs={"alpha": 0.25}
    )
    return randomize_batchnorm(model, seed)
