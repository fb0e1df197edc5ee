"""ContextNet's paper strides (``detail_stride=8``) beside the reference's default (2)."""

import numpy as np
import pytest

import tfseg
from tfseg.flops import count_params


def test_paper_detail_stride():
    reference = tfseg.build_model("contextnet", 5, input_shape=(64, 96, 3))
    paper = tfseg.build_model("contextnet", 5, input_shape=(64, 96, 3), detail_stride=8)
    assert count_params(paper) == count_params(reference)
    assert paper.get_layer("contextnet_detail_ds3_pw_relu").output.shape[1:3] == (8, 12)
    out = paper(np.zeros((1, 64, 96, 3), "float32"), training=False)
    assert tuple(out.shape) == (1, 64, 96, 5)
    with pytest.raises(ValueError, match="detail_stride must be one of"):
        tfseg.build_model("contextnet", 5, detail_stride=4)
