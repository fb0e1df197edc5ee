"""experiments/compute_rates.py: GMAC/s of every candidate of a reference_compare.py run."""

import pytest

from experiments import compute_rates


def test_rates_from_a_compare_document():
    gmacs = compute_rates.reference_gmacs()
    assert gmacs["ERFNet"] > 20 and gmacs["ENet"] > 1  # the reference table's rows
    doc = {"input_size": "512x1024", "rows": [
        {"network": "erfnet", "median_ms": {"reference_onnx": 300.0, "openvino_int8": 150.0},
         "best": "openvino_int8", "best_vs_reference_onnx": 2.0},
        {"network": "enet", "median_ms": {"reference_onnx": 100.0, "tflite": 50.0},
         "best": "tflite", "best_vs_reference_onnx": 2.0},
        {"network": "enet_small", "input_size": "256x512", "median_ms": {"tflite": 1.0}},
        {"network": "unknown", "median_ms": {"tflite": 1.0}},
    ]}  # fmt: skip
    refs = {"erfnet": "ERFNet", "enet": "ENet", "enet_small": "ENet"}
    rows = compute_rates.rates(doc, gmacs, refs.get)
    # another input size and a network without a reference row are left out; sorted by the
    # reference's ONNX rate
    assert {r["network"] for r in rows} == {"erfnet", "enet"}
    onnx = [r["gmac_per_s"]["reference_onnx"] for r in rows]
    assert onnx == sorted(onnx)
    erf = next(r for r in rows if r["network"] == "erfnet")
    assert erf["gmacs"] == gmacs["ERFNet"]
    assert erf["gmac_per_s"]["reference_onnx"] == pytest.approx(gmacs["ERFNet"] / 0.3, abs=0.05)
    assert erf["gmac_per_s"]["openvino_int8"] == pytest.approx(2 * erf["gmac_per_s"][
        "reference_onnx"], abs=0.1)  # fmt: skip
    assert erf["best"] == "openvino_int8" and erf["best_vs_reference_onnx"] == 2.0
