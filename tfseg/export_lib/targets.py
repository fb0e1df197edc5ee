"""Deployment targets: ONNX opset, shape rules, precisions, and the ONNX op allow-lists of TensorRT.

The allow-lists are the operators marked supported ("Y") in onnx-tensorrt's ``docs/operators.md``
as released with each TensorRT version (checked against the onnx/onnx-tensorrt repository history):

- TensorRT 8.2 (JetPack 4.6.x, TX2): commit 85e79f6, "TensorRT 8.2 ONNX Parser Release (#776)",
  "TensorRT 8.2 supports operators up to Opset 13". HardSwish, Mod and OneHot were marked supported
  only later on the 8.2-GA branch; they are left out here (the release document says N).
- TensorRT 8.5 (JetPack 5.1, Xavier): commit 3b008c4, "TensorRT 8.5 GA Release (#879)",
  "TensorRT 8.5 supports operators up to Opset 17"; adds GridSample, NonZero, Reciprocal, RoiAlign,
  Trilu, ... to the 8.2 list.

Restrictions from the "Restrictions" column that a tfseg graph can hit are checked per node in
``onnx_export.check_onnx_model`` (convolution weights must be initializers; Resize only
``nearest``/``linear``; ``axes`` / ``K`` inputs must be constants), plus the project rule of
DESIGN.md §5: Resize scales/sizes must be constants on the Jetson targets.
"""

_TRT82 = frozenset(
    [
        "Abs",
        "Acos",
        "Acosh",
        "Add",
        "And",
        "ArgMax",
        "ArgMin",
        "Asin",
        "Asinh",
        "Atan",
        "Atanh",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Ceil",
        "Celu",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Cosh",
        "CumSum",
        "DepthToSpace",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "Einsum",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "EyeLike",
        "Flatten",
        "Floor",
        "GRU",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gemm",
        "GlobalAveragePool",
        "GlobalLpPool",
        "GlobalMaxPool",
        "Greater",
        "GreaterOrEqual",
        "HardSigmoid",
        "Identity",
        "If",
        "ImageScaler",
        "InstanceNormalization",
        "IsNaN",
        "LRN",
        "LSTM",
        "LeakyRelu",
        "Less",
        "LessOrEqual",
        "Log",
        "LogSoftmax",
        "Loop",
        "LpNormalization",
        "LpPool",
        "MatMul",
        "Max",
        "MaxPool",
        "Mean",
        "Min",
        "Mul",
        "Neg",
        "NonMaxSuppression",
        "Not",
        "Or",
        "PRelu",
        "Pad",
        "ParametricSoftplus",
        "Pow",
        "QuantizeLinear",
        "RNN",
        "RandomUniform",
        "RandomUniformLike",
        "Range",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
        "Relu",
        "Reshape",
        "Resize",
        "ReverseSequence",
        "Round",
        "ScaledTanh",
        "Scan",
        "Scatter",
        "ScatterElements",
        "ScatterND",
        "Selu",
        "Shape",
        "Sigmoid",
        "Sign",
        "Sin",
        "Sinh",
        "Size",
        "Slice",
        "Softmax",
        "Softplus",
        "Softsign",
        "SpaceToDepth",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tan",
        "Tanh",
        "ThresholdedRelu",
        "Tile",
        "TopK",
        "Transpose",
        "Unsqueeze",
        "Upsample",
        "Where",
    ]
)

_TRT85 = _TRT82 | frozenset(
    [
        "GridSample",
        "MeanVarianceNormalization",
        "NonZero",
        "RandomNormal",
        "RandomNormalLike",
        "Reciprocal",
        "RoiAlign",
        "Shrink",
        "Trilu",
        "Xor",
    ]
)

TENSORRT_ONNX_OPS = {"8.2": _TRT82, "8.5": _TRT85}

# Supported Resize attributes (onnx-tensorrt 8.2 and 8.5 alike).
RESIZE_MODES = frozenset(["nearest", "linear"])
RESIZE_COORDINATE_MODES = frozenset(
    ["half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"]
)

# Every numeric precision tfseg exports (each format and target allows a subset).
# bf16: OpenVINO's CPU plugin on AVX-512 BF16 / AMX (openvino_export)
PRECISIONS = ("fp32", "fp16", "bf16", "int8")

TARGETS = {
    "generic": {
        "description": "desktop GPU/CPU: onnxruntime, TensorRT of any recent version",
        "opset": 17,
        "tensorrt": None,
        "static": False,
        "precisions": ("fp32", "fp16", "bf16", "int8"),
    },
    "cpu": {
        "description": "this machine's CPU: LiteRT or onnxruntime, static 1xHxW (--format=auto "
        "measures the candidates here and keeps the fastest that passes --verify)",
        "opset": 17,
        "tensorrt": None,
        "static": True,
        "precisions": ("fp32", "fp16", "bf16", "int8"),
    },
    "tx2": {
        "description": "Jetson TX2, JetPack 4.6.x, TensorRT 8.2 (FP32/FP16, no INT8)",
        "opset": 13,
        "tensorrt": "8.2",
        "static": True,
        "precisions": ("fp32", "fp16"),
    },
    "xavier": {
        "description": "Jetson AGX/NX Xavier, JetPack 5.1, TensorRT 8.5 (FP32/FP16/INT8)",
        "opset": 17,
        "tensorrt": "8.5",
        "static": True,
        "precisions": ("fp32", "fp16", "int8"),
    },
}


def allowed_ops(target):
    """The op-type allow-list of ``target`` (``None``: any op of the standard ONNX domain)."""
    trt = TARGETS[target]["tensorrt"]
    return None if trt is None else TENSORRT_ONNX_OPS[trt]
