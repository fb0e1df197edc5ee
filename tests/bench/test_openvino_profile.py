"""experiments/openvino_profile.py: OpenVINO's per-node profile split by node type and kernel
precision (issue 22)."""

import datetime
import types

import pytest

pytest.importorskip("openvino")

from experiments import openvino_profile  # noqa: E402


def test_kernel_precision_and_split():
    assert openvino_profile.kernel_precision("jit_avx2_I8") == "i8"
    assert openvino_profile.kernel_precision("jit_uni_U8") == "i8"
    assert openvino_profile.kernel_precision("brgconv_avx2_f32") == "f32"
    assert openvino_profile.kernel_precision("undef") == "undef"

    def info(node_type, exec_type, ms):
        return types.SimpleNamespace(node_type=node_type, exec_type=exec_type,
                                     real_time=datetime.timedelta(milliseconds=ms))

    runs = [[info("Convolution", "jit_avx2_I8", 3.0), info("Convolution", "jit_avx2_I8", 1.0),
             info("ConvolutionBackpropData", "brgconv_avx2_f32", 2.0),
             info("Parameter", "undef", 0.0)],
            [info("Convolution", "jit_avx2_I8", 5.0),
             info("ConvolutionBackpropData", "brgconv_avx2_f32", 2.0)]]
    assert openvino_profile.split(runs, 2) == {"Convolution/i8": 4.5,
                                                "ConvolutionBackpropData/f32": 2.0}


def test_profile_of_a_zoo_network():
    row = openvino_profile.profile("enet", (64, 128), "fp32", threads=1, warmup=1, runs=1)
    assert row["node_ms"] == pytest.approx(sum(row["by_kind_ms"].values()), abs=0.1)
    # ENet's convolutions at 64x128: their multiply-adds and rate (the flops count of the model
    # counts transposed convolutions too, so it is an upper bound)
    import tfseg
    from tfseg.flops import model_macs

    total = model_macs(tfseg.build_model("enet", 19, input_shape=(64, 128, 3))) / 1e9
    assert 0.3 * total < row["conv_gmac"] <= total * 1.01
    # the rate is computed before the rounding of its two terms (GMACs to 0.01, ms to 0.1): it
    # lies within the range those rounded terms allow
    gmac, ms = row["conv_gmac"], row["conv_ms"]
    low = (gmac - 0.005) / (ms + 0.05) * 1e3
    high = (gmac + 0.005) / max(ms - 0.05, 1e-6) * 1e3
    assert 0.99 * low <= row["conv_gmac_per_s"] <= 1.01 * high, row
    assert row["by_kind_ms"].get("Convolution/f32", 0) > 0
    # an fp32 IR: no convolution ran an 8-bit kernel (ENet's max-unpooling masks may be u8)
    assert not any(k.startswith("Convolution") and k.endswith("/i8") for k in row["by_kind_ms"])
