"""copy_weights_by_name: matching layers copied, missing and mismatched ones reported by name."""

import keras
import numpy as np
import pytest

from tfseg.encoders.weights import (
    CopyReport,
    WeightCopyError,
    copy_weights_by_name,
    weighted_layers,
)


def _model(widths, names=("a", "b", "c"), seed=0):
    """Dense layers of the given widths, with random weights."""
    inputs = keras.Input((3,))
    x = inputs
    for width, name in zip(widths, names):
        x = keras.layers.Dense(width, name=name)(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.weights])
    return model


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


def test_copies_matching_layers_and_reports_the_rest():
    source = _model((4, 5, 6), names=("a", "b", "x"))
    target = _model((4, 7, 6), names=("a", "b", "c"), seed=1)
    before_b = target.get_layer("b").get_weights()
    report = copy_weights_by_name(source, target, strict=False)
    assert report.copied == ["a"]
    assert report.missing == ["c"]
    assert report.mismatched == ["b"]
    assert report.tensors == 2
    assert report.shapes["b"] == ([(4, 7), (7,)], [(4, 5), (5,)])
    assert not report.complete
    assert _equal(target.get_layer("a"), source.get_layer("a"))
    for got, want in zip(target.get_layer("b").get_weights(), before_b):
        np.testing.assert_array_equal(got, want)  # mismatched: left alone
    assert report.describe() == (
        "layers not in the source: c; shape mismatch: b [(4, 7), (7,)] vs [(4, 5), (5,)]"
    )


def test_strict_copy_raises_before_copying_anything():
    source = _model((4, 5, 6), names=("a", "b", "x"))
    target = _model((4, 7, 6), names=("a", "b", "c"), seed=1)
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(
        WeightCopyError, match="layers not in the source: c; shape mismatch: b"
    ) as e:
        copy_weights_by_name(source, target)
    assert (e.value.report.missing, e.value.report.mismatched) == (["c"], ["b"])
    for got, want in zip(target.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    assert isinstance(e.value, ValueError)


def test_full_copy_of_the_same_architecture():
    source, target = _model((4, 5, 6)), _model((4, 5, 6), seed=1)
    report = copy_weights_by_name(source, target)
    assert report == CopyReport(copied=["a", "b", "c"], tensors=6)
    assert report.complete and report.describe() == ""
    assert all(_equal(target.get_layer(n), source.get_layer(n)) for n in "abc")


def test_arrays_as_source_and_a_subset_of_layers():
    target = _model((4, 5, 6))
    kernel, bias = np.ones((4, 5), "float32"), np.zeros(5, "float32")
    report = copy_weights_by_name({"b": [kernel, bias], "zzz": []}, target, layers=["b"])
    assert report.copied == ["b"] and report.tensors == 2
    np.testing.assert_array_equal(target.get_layer("b").get_weights()[0], kernel)
    with pytest.raises(KeyError, match="no layer 'nope'"):
        copy_weights_by_name({}, target, layers=["nope"])


def test_renamed_layers_through_mappings():
    """Pairs by any naming: e.g. an encoder's layers under another prefix."""
    source = _model((4, 5, 6), names=("enc_a", "enc_b", "head"))
    target = _model((4, 5, 6), names=("other_a", "other_b", "head"), seed=1)
    renamed = {
        f"other_{n[4:]}": layer for n, layer in weighted_layers(source).items() if n[:4] == "enc_"
    }
    report = copy_weights_by_name(renamed, target, layers=list(renamed))
    assert report.copied == ["other_a", "other_b"]
    assert not _equal(target.get_layer("head"), source.get_layer("head"))


def test_nested_models():
    inner = _model((4, 5), names=("a", "b"))
    inputs = keras.Input((3,))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="top")(inner(inputs)))
    assert list(weighted_layers(outer)) == ["a", "b", "top"]
    assert list(weighted_layers(outer, nested=False)) == [inner.name, "top"]
    source = _model((4, 5), names=("a", "b"), seed=3)
    report = copy_weights_by_name(source, outer, layers=["a", "b"])
    assert report.copied == ["a", "b"]
    assert _equal(inner.get_layer("b"), source.get_layer("b"))
