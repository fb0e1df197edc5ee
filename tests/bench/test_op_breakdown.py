"""experiments/op_breakdown.py: onnxruntime's profile split by kind of operation (issue 22)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from experiments import op_breakdown  # noqa: E402


def _graph(quantized=False):
    """x (1,8,16,16) -> 3x3 conv + ReLU -> 1x1 conv -> depthwise 3x3 -> max pool
    -> 3x3/2 transposed conv -> y; weights random. ``quantized``: the 1x1 convolution reads its
    weight through a DequantizeLinear, as in a QDQ export."""
    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [weight("w_dense", 8, 8, 3, 3), weight("w_dw", 8, 1, 3, 3),
             weight("w_up", 8, 4, 3, 3)]
    nodes = [
        helper.make_node("Conv", ["x", "w_dense"], ["c1"], name="dense", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
    ]
    if quantized:
        q = numpy_helper.from_array(rng.integers(-127, 127, (8, 8, 1, 1)).astype(np.int8), "w_pw_q")
        inits += [q, numpy_helper.from_array(np.float32(0.01), "s"),
                  numpy_helper.from_array(np.int8(0), "z")]
        nodes.append(helper.make_node("DequantizeLinear", ["w_pw_q", "s", "z"], ["w_pw"]))
    else:
        inits.append(weight("w_pw", 8, 8, 1, 1))
    nodes += [
        helper.make_node("Conv", ["r1", "w_pw"], ["c2"], name="pointwise"),
        helper.make_node("Conv", ["c2", "w_dw"], ["c3"], name="depthwise", group=8,
                         pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c3"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("ConvTranspose", ["p", "w_up"], ["y"], name="up", strides=[2, 2],
                         pads=[1, 1, 0, 0]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("quantized", [False, True])
def test_conv_kinds_from_weights_and_groups(quantized):
    kinds = op_breakdown.conv_kinds(_graph(quantized))
    assert kinds["dense"] == "dense conv"
    assert kinds["pointwise"] == "1x1 conv"
    assert kinds["depthwise"] == "depthwise conv"
    assert kinds["up"] == "transposed conv"
    # ORT names a fused NCHWc kernel after the activation's output: it maps to the convolution
    assert kinds["r1"] == "dense conv"
    assert op_breakdown.kind_of("NchwcConv", "r1_nchwc", kinds) == "dense conv"
    assert op_breakdown.kind_of("QLinearConv", "pointwise_token_12", kinds) == "1x1 conv"
    assert op_breakdown.kind_of("MaxPool", "pool", kinds) == "pooling"
    assert op_breakdown.kind_of("DequantizeLinear", "dq", kinds) == "quantize/dequantize"
    assert op_breakdown.kind_of("Transpose", "t", kinds) == "layout"


def test_profile_splits_every_kernel_of_a_real_run():
    x = np.random.default_rng(1).standard_normal((1, 8, 16, 16)).astype(np.float32)
    kinds, ops, wall = op_breakdown.profile(_graph(), x, threads=1, warmup=1, runs=2)
    for kind in ("dense conv", "1x1 conv", "depthwise conv", "pooling", "transposed conv"):
        assert kinds.get(kind, 0.0) > 0.0, (kind, kinds)
    assert set(kinds) <= set(op_breakdown.KINDS)
    assert "ConvTranspose" in ops
    assert sum(kinds.values()) == pytest.approx(sum(ops.values()))
    assert 0.0 < sum(kinds.values()) <= wall * 1.05


def test_amdahl_and_best_of_kinds():
    fp32 = {"dense conv": 60.0, "depthwise conv": 30.0, "layout": 10.0}
    int8 = {"dense conv": 30.0, "depthwise conv": 40.0, "layout": 5.0,
            "quantize/dequantize": 5.0}
    assert op_breakdown.amdahl_bound(fp32, 2.0) == pytest.approx(100.0 / 70.0)
    # min per kind: 30 + 30 + 5, plus the int8 form's 5 ms of conversions
    assert op_breakdown.best_of_kinds(fp32, int8) == pytest.approx(100.0 / 70.0)


def test_summary_joins_the_reference_table():
    split = {"networks": {"net": {
        "fp32": {"kinds_ms": {"dense conv": 60.0, "depthwise conv": 30.0, "layout": 10.0}},
        "int8": {"kinds_ms": {"dense conv": 30.0, "depthwise conv": 40.0, "layout": 5.0,
                              "quantize/dequantize": 5.0}},
        }, "absent": {}}}
    reference = {"rows": [{"network": "net", "median_ms": {
        "reference_onnx": 140.0, "onnxruntime": 100.0, "onnxruntime_int8": 80.0}}]}
    table = op_breakdown.summary_table(split, reference).splitlines()
    assert len(table) == 3  # header, rule, one row: "absent" has no reference row
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:5] == ["`net`", "140", "80 (onnxruntime_int8)", "1.75x", "100"]
    assert cells[5] == "2.00x / - / 0.75x"
    assert cells[6] == "60% / 30% / 10%"
    assert cells[7:] == ["1.43x", "2.00x"]
