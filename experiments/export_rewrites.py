"""Export rewrites, each timed against the form it replaced, interleaved (issue 22, "graph work at
export"; docs/results.md):

    PYTHONPATH=. python experiments/export_rewrites.py --rewrite=prelu --networks=dabnet,cfpnet \
        --input_size=512x1024 --threads=2 --json=/tmp/int8_prelu.json
    PYTHONPATH=. python experiments/export_rewrites.py --rewrite=shuffle \
        --networks=lite_hrnet,aglnet,lednet

``--rewrite=shuffle``: ``ChannelShuffle`` as a gather (before) against reshape -> transpose ->
reshape (``graph._TransposeChannelShuffle``, now), each in int8 LiteRT and in onnxruntime (fp32),
with the largest logit difference of the ONNX copy from the Keras model (both are exact forms).

``--rewrite=onnx_shuffle``: the ONNX conversion's channel shuffles as tf2onnx writes them (a
transpose to NHWC, the shuffle's transpose of two inner axes, a transpose back to NCHW) against
``onnx_layout.nchw_channel_shuffles`` (now: one transpose on the NCHW tensor), in onnxruntime fp32
and int8 (QDQ, calibrated on the same random inputs), with each one's largest logit difference
from the Keras model.

``--rewrite=onnx_resize``: the ONNX conversion's upsamplings as tf2onnx writes them (a Resize in
NCHW, then the transpose of its larger output to NHWC) against ``onnx_layout.nhwc_upsamplings``
(now: the transpose first, the Resize in NHWC), in onnxruntime fp32 and int8.

``--rewrite=selu``: SELU as the converter writes it (GREATER / EXP / SUB / SELECT) against
``graph._EluFormSELU`` (now, for int8), in int8 and fp32 LiteRT, with each one's error against
the Keras logits (MiniNet is the zoo's SELU network).

``--rewrite=grouped``: grouped convolutions as Keras traces them (a convolution per group)
against one grouped CONV_2D (now, for int8 LiteRT), in int8 and fp32 LiteRT (RegSeg, the
ShuffleNet encoder).

``--rewrite=unpool``: ENet's / SegNet's max-pool switches and max-unpooling as comparisons
(EQUAL / SELECT_V2 / CAST, the float form) against ``graph._MaskPoolSwitches`` /
``graph._MaskMaxUnpool2D`` (0/1 masks and depth-to-space; now, for int8 only), in int8 LiteRT.

``--rewrite=avgpool``: "valid" average poolings as AVERAGE_POOL_2D against depthwise
convolutions of constant weights (``graph._ConvAveragePooling2D``), in int8 LiteRT.

``--rewrite=expand_depthwise``: depthwise convolutions with a channel multiplier above 1
(DFANet, BiSeNetV2) as one DEPTHWISE_CONV_2D against a 0/1 1x1 convolution that repeats the
channels and a depthwise convolution of multiplier 1 (``graph._ExpandedDepthwiseConv2D``), in int8
and fp32 LiteRT.

``--rewrite=strided_pointwise``: ``SubsampledPointwiseConv2D`` (DFANet's strided shortcuts) as
the STRIDED_SLICE + 1x1 convolution it trains as against one strided 1x1 CONV_2D, in int8 and
fp32 LiteRT.

``--rewrite=same_pool``: "same" average poolings (ADSCNet, CGNet, DABNet, DDRNet, BiSeNetV2) as
AVERAGE_POOL_2D against depthwise convolutions of constant weights (two 1-D passes above 9
pixels) and a multiply by the border correction (``graph._ConvSameAveragePooling2D``), in int8
LiteRT.

``--rewrite=deconv_relu``: a ReLU after a transposed convolution as RELU (XNNPACK does not run it
in int8) against a leaky ReLU of slope 1/256 (``graph.deconv_relus``), in int8 LiteRT.

``--rewrite=final_resize``: the upsampling that makes the logits in int8 (the slice form, on the
full-size tensor) against one float RESIZE_BILINEAR after a DEQUANTIZE of the low-resolution
scores (``graph._FloatFinalResize``), in int8 LiteRT.

``--rewrite=int8_resize``: the other bilinear upsamplings (inside the network) in int8, as the
slice form against one int8 RESIZE_BILINEAR (``graph._NativeBilinearUpsample``), in int8 LiteRT.

``--rewrite=deconv_kernels``: transposed convolutions whose kernel is not twice their stride
(3x3/2 in ADSCNet, ERFNet, LinkNet, ...; ENet's 2x2/2) as TRANSPOSE_CONV against the sub-pixel
form (``graph._SubPixelConvTranspose`` over the window of input rows its taps reach), in int8 and
fp32 LiteRT.

``--rewrite=nearest``: nearest ``UpSampling2D`` (Lite-HRNet's cross-resolution weights) as TILE
ops against x2 steps of CONCATENATION + DEPTH_TO_SPACE, in int8 and fp32 LiteRT.

``--rewrite=litert_outputs``: ``LiteRTRunner`` on the Interpreter (the logits copied out of its
arena each call) against the CompiledModel path (the logits written into the array returned,
``tflite._DirectOutputs``), fp32 and int8, with the largest difference between the two (0: the
same kernels).

``--rewrite=openvino_outputs``: ``OpenVINORunner`` copying the logits out of the request each call
(``bind_outputs=False``, the runner until session 38) against the logits written into pooled
arrays bound to the request (``tfseg.arrays.ArrayPool``), fp32 and int8 (NNCF) IRs, with the
largest difference between the two (0: the same kernels).

``--rewrite=onnx_final_resize``: the int8 ONNX (QDQ) with the upsampling that makes the logits
quantized (int8 Resize, then a DequantizeLinear of the full-size logits) against it left in float
(``onnx_int8.final_resizes``: the low-resolution scores dequantized), with each one's error
against the Keras logits.

``--rewrite=openvino_split_resize``: the int8 IR whole against the same IR cut before the logits'
final bilinear upsampling, followed by onnxruntime's Resize of the NHWC low-resolution scores (a
split artifact that does not exist: measured, session 39, not kept), with the largest difference
between the two.

``--rewrite=prelu``, per network, two int8 conversions of the same export copy, calibrated on the
same random inputs:
``max``, every one-slope PReLU as ``max(x, alpha x)`` (the export until session 16), and
``leaky``, what ``tfseg.export`` writes now (``graph._LeakyFormPReLU``, with the max form kept
where XNNPACK would refuse the leaky op's scales). The PReLU slopes are drawn in [0.05, 0.4] (a
trained network's range; the initial 0.25 everywhere would hide the scale differences). Reported
per form: XNNPACK partitions of the delegated graph, layers kept in max form, the argmax agreement
with the float Keras model on one random input (random weights: a rough check only; the accuracy
guard of a trained model is ``tfseg.export --verify``) and the median of ``--rounds`` alternating
rounds of ``interpreter.invoke()`` (no input or output copies).
"""

import json

import numpy as np
from absl import app, flags

# ``--rewrite`` -> (``inference_model`` option, {form: value}, precisions) of the rewrites that
# are one option of the LiteRT export, timed against the form each replaced (``tflite_forms``)
TFLITE_REWRITES = {
    # SELU as the converter writes it against ``graph._EluFormSELU``
    "selu": ("selu_as_elu", {"selu": False, "elu": True}, ("int8", "fp32")),
    # grouped convolutions as Keras traces them (SPLIT, a convolution per group, CONCATENATION)
    # against one grouped CONV_2D (``graph._NativeGroupedConv2D``)
    "grouped": ("grouped_conv", {"keras": "keras", "native": "native"}, ("int8", "fp32")),
    # switches by comparison against ``graph._MaskPoolSwitches``
    "unpool": ("unpool_masks", {"compare": False, "masks": True}, ("int8",)),
    # AVERAGE_POOL_2D against a depthwise convolution
    "avgpool": ("avg_pool_as_conv", {"pool": False, "conv": True}, ("int8",)),
    # a depthwise convolution with a channel multiplier as one op against a 0/1 1x1 expansion
    # and a depthwise convolution of multiplier 1
    "expand_depthwise": ("expand_depthwise", {"multiplier": False, "expanded": True},
                         ("int8", "fp32")),
    # a strided 1x1 convolution as STRIDED_SLICE + convolution against one strided CONV_2D
    "strided_pointwise": ("strided_pointwise", {"slice": False, "strided": True},
                          ("int8", "fp32")),
    # "same" average poolings as AVERAGE_POOL_2D against ``graph._ConvSameAveragePooling2D``
    "same_pool": ("same_pool_as_conv", {"pool": False, "conv": True}, ("int8",)),
    # RELU after TRANSPOSE_CONV against a leaky ReLU
    "deconv_relu": ("deconv_relu_as_leaky", {"relu": False, "leaky": True}, ("int8",)),
    # the logits' upsampling in int8 against one float resize
    "final_resize": ("float_final_resize", {"int8": False, "float": True}, ("int8",)),
    # the inner upsamplings as slices against RESIZE_BILINEAR
    "int8_resize": ("native_resize", {"slices": False, "native": True}, ("int8",)),
    # transposed convolutions of kernel k != 2s (3x3/2 and 2x2/2) as TRANSPOSE_CONV against the
    # sub-pixel form (a 2x2 or 1x1 convolution + DEPTH_TO_SPACE)
    "deconv_kernels": ("subpixel_any_kernel", {"2s_only": False, "any": True}, ("int8", "fp32")),
    # nearest UpSampling2D as the converter writes it (TILE) against CONCATENATION +
    # DEPTH_TO_SPACE steps (``graph._DepthToSpaceNearest``)
    "nearest": ("nearest_as_d2s", {"tile": False, "d2s": True}, ("int8", "fp32")),
}
REWRITE_NAMES = ["prelu", "shuffle", "onnx_shuffle", "onnx_resize", "litert_outputs",
                 "openvino_outputs", "onnx_final_resize", "openvino_split_resize",
                 *TFLITE_REWRITES]
flags.DEFINE_enum("rewrite", "prelu", REWRITE_NAMES, "The rewrite to measure.")
flags.DEFINE_list("networks", ["dabnet", "cfpnet", "enet"], "tfseg networks (with PReLUs / "
                  "channel shuffles).")
flags.DEFINE_string("input_size", "512x1024", "HxW.")
flags.DEFINE_integer("threads", 2, "LiteRT threads.")
flags.DEFINE_integer("rounds", 10, "timed rounds.")
flags.DEFINE_string("json", None, "write the results here.")
FLAGS = flags.FLAGS


def convert(model, size, rep, form):
    """``(interpreter, info)`` of the int8 conversion with PReLUs in ``form``."""
    from ai_edge_litert.interpreter import Interpreter

    from tfseg.bench.runtimes import export_copy
    from tfseg.export_lib import graph
    from tfseg.export_lib.tflite import convert_tflite

    original = graph.prelu_slope
    if form == "max":
        graph.prelu_slope = lambda layer: None  # every PReLU takes the per-channel path
    try:
        info = {}
        copy = export_copy(model, {}, "tflite", "int8")
        content = convert_tflite(
            copy, input_size=size, precision="int8", representative=rep, info=info
        )
    finally:
        graph.prelu_slope = original
    it = Interpreter(model_content=content, num_threads=FLAGS.threads)
    it.allocate_tensors()
    info["partitions"] = sum(d["op_name"] == "DELEGATE" for d in it._get_ops_details())
    return it, info


def shuffle_rows(model, size, rep):
    """``{runner name: runner}`` and ``{form: row}`` for ``--rewrite=shuffle``."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.pipeline import rewrites
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite

    want = np.asarray(model(rep[0]))
    runners, rows = {}, {}
    for form, on in (("gather", False), ("transpose", True)):
        copy = inference_model(model, **{**rewrites("tflite", "int8"), "transpose_shuffle": on})[0]
        content = convert_tflite(copy, input_size=size, precision="int8", representative=rep)
        runners[f"{form} tflite_int8"] = LiteRTRunner(content, threads=FLAGS.threads)
        copy = inference_model(model, **{**rewrites("onnx"), "transpose_shuffle": on})[0]
        proto = convert_onnx(copy, opset=17, input_shape=(1, *size))
        ort = OnnxRunner(proto, threads=FLAGS.threads)
        runners[f"{form} onnxruntime"] = ort
        rows[form] = {"onnx_max_abs_logit_diff": float(np.abs(ort(rep[0]) - want).max())}
    return runners, rows


def onnx_shuffle_rows(model, size, rep, option="nchw_shuffles", forms=("nhwc", "nchw")):
    """``{runner name: runner}`` and ``{form: row}`` for ``--rewrite=onnx_shuffle`` (and, with
    ``option="nhwc_upsamplings"``, ``--rewrite=onnx_resize``): ``convert_onnx``'s ``option`` off
    (the first form) and on."""
    from tfseg.bench.runtimes import export_copy
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx

    want = np.asarray(model(rep[0]))
    copy = export_copy(model, {}, "onnx")
    runners, rows = {}, {}
    for form, on in zip(forms, (False, True)):
        proto = convert_onnx(copy, opset=17, input_shape=(1, *size), **{option: on})
        fp32, int8 = OnnxRunner(proto, threads=FLAGS.threads), OnnxRunner(
            quantize_onnx(proto, rep), threads=FLAGS.threads)
        runners[f"{form} onnxruntime"], runners[f"{form} onnxruntime_int8"] = fp32, int8
        rows[form] = {
            "transposes": sum(n.op_type == "Transpose" for n in proto.graph.node),
            "last_node": proto.graph.node[-1].op_type,
            "fp32_max_abs_logit_diff": float(np.abs(fp32(rep[0]) - want).max()),
            "int8_argmax_agreement": float(np.mean(int8(rep[0]).argmax(-1) == want.argmax(-1))),
        }
    return runners, rows


def litert_output_rows(model, size, rep):
    """``{runner name: runner}`` and ``{precision: row}`` for ``--rewrite=litert_outputs``."""
    from tfseg.bench.runtimes import export_copy
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite

    runners, rows = {}, {}
    for precision in ("int8", "fp32"):
        content = convert_tflite(export_copy(model, {}, "tflite", precision), input_size=size,
                                 precision=precision,
                                 representative=rep if precision == "int8" else None)
        copy = LiteRTRunner(content, threads=FLAGS.threads, direct=False)
        in_place = LiteRTRunner(content, threads=FLAGS.threads)
        runners[f"copy tflite_{precision}"] = copy
        runners[f"in_place tflite_{precision}"] = in_place
        rows[precision] = {"in_place": in_place.direct,
                           "max_abs_diff": float(np.abs(copy(rep[0]) - in_place(rep[0])).max())}
    return runners, rows


def openvino_output_rows(model, size, rep):
    """``{runner name: runner}`` and ``{precision: row}`` for ``--rewrite=openvino_outputs``."""
    from tfseg.bench.runtimes import export_copy
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import convert_onnx

    runners, rows = {}, {}
    for precision in ("int8", "fp32"):
        proto = convert_onnx(export_copy(model, {}, "openvino", precision), opset=17,
                             input_shape=(1, *size), nhwc_upsamplings=False)
        ir = ovx.from_onnx(proto)
        if precision == "int8":
            ir = ovx.quantize(ir, rep)
        copy = ovx.OpenVINORunner(ir, threads=FLAGS.threads, bind_outputs=False)
        bound = ovx.OpenVINORunner(ir, threads=FLAGS.threads)
        runners[f"copy openvino_{precision}"] = copy
        runners[f"bound openvino_{precision}"] = bound
        rows[precision] = {"max_abs_diff": float(np.abs(copy(rep[0]) - bound(rep[0])).max())}
    return runners, rows


def openvino_split_resize_rows(model, size, rep):
    """``{runner name: runner}`` and ``{form: row}`` for ``--rewrite=openvino_split_resize``: the
    int8 IR whole against the same IR cut before the logits' final bilinear upsampling (its input
    transposed to NHWC in the IR) followed by onnxruntime's Resize of that NHWC tensor, which ran
    3-4x faster than OpenVINO's Interpolate on 19 x 128 x 256 -> x4 under the AVX2 profile
    (session 39). Measures what a split artifact would gain; none exists."""
    import onnx
    import onnxruntime as ort
    import openvino as ov
    import openvino.opset13 as ops
    from onnx import TensorProto, helper

    from tfseg.bench.runtimes import export_copy
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import convert_onnx

    proto = convert_onnx(export_copy(model, {}, "openvino", "int8"), opset=17,
                         input_shape=(1, *size), nhwc_upsamplings=False)
    whole = ovx.quantize(ovx.from_onnx(proto), rep)
    node = whole.get_results()[0].input_value(0).get_node()
    while node.get_type_name() != "Interpolate":  # through the transpose to NHWC
        if node.get_input_size() == 0:
            return {}, {"reason": "the logits are not made by an upsampling"}
        node = node.input_value(0).get_node()
    if str(node.get_attributes().get("mode")) not in ("linear_onnx", "linear"):
        return {}, {"reason": f"the final upsampling is {node.get_attributes().get('mode')}"}
    low = list(node.input_value(0).get_partial_shape().to_shape())
    high = list(node.output(0).get_partial_shape().to_shape())
    nhwc = ops.transpose(node.input_value(0), ops.constant(np.array([0, 2, 3, 1])))
    body = ov.Model([ops.result(nhwc)], whole.get_parameters(), "body")
    scales = [1.0, high[2] / low[2], high[3] / low[3], 1.0]
    graph = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "scales"], ["logits"], mode="linear",
                          coordinate_transformation_mode="half_pixel")], "final_resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, low[2], low[3], low[1]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       [1, high[2], high[3], high[1]])],
        [helper.make_tensor("scales", TensorProto.FLOAT, [4], scales)])
    data = onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = FLAGS.threads, 1
    # onnxruntime's threads spinning after each call slowed OpenVINO's next one: with them
    # spinning (the default) the split ran 20-30 % slower than the whole IR (session 39)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    resize = ort.InferenceSession(data.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"])
    first = ovx.OpenVINORunner(body, threads=FLAGS.threads)

    def split(x):
        return resize.run(None, {"x": first(x)})[0]

    together = ovx.OpenVINORunner(whole, threads=FLAGS.threads)
    diff = float(np.abs(together(rep[0]) - split(rep[0])).max())
    return ({"openvino_int8 whole": together, "openvino_int8 + onnxruntime resize": split},
            {"final_step": f"{low[1]}x{low[2]}x{low[3]} x{high[2] // low[2]}",
             "max_abs_diff": diff})


def onnx_final_resize_rows(model, size, rep):
    """``{runner name: runner}`` and ``{form: row}`` for ``--rewrite=onnx_final_resize``."""
    from tfseg.bench.runtimes import export_copy
    from tfseg.export_lib.onnx_export import OnnxRunner, convert_onnx
    from tfseg.export_lib.onnx_int8 import quantize_onnx

    want = np.asarray(model(rep[0]))
    proto = convert_onnx(export_copy(model, {}, "onnx"), opset=17, input_shape=(1, *size))
    runners, rows = {}, {}
    for form, on in (("int8", False), ("float", True)):
        info = {}
        runner = OnnxRunner(quantize_onnx(proto, rep, info=info, float_final_resize=on),
                            threads=FLAGS.threads)
        got = runner(rep[0])
        runners[f"{form} onnxruntime_int8"] = runner
        rows[form] = {
            "float_nodes": info["float_nodes"],
            "mean_rel_logit_error": float(np.abs(got - want).mean() / np.abs(want).mean()),
            "argmax_agreement": float(np.mean(got.argmax(-1) == want.argmax(-1))),
        }
    return runners, rows


def tflite_forms(model, size, rep, option, forms, precisions=("int8", "fp32")):
    """``{runner name: runner}`` and ``{form: {precision: row}}``: the LiteRT export (int8 and
    fp32) with ``inference_model``'s ``option`` set to each value of ``forms`` (``{form: value}``),
    each with its error against the Keras logits."""
    from tfseg.export_lib.graph import inference_model
    from tfseg.export_lib.pipeline import rewrites
    from tfseg.export_lib.tflite import LiteRTRunner, convert_tflite

    want = np.asarray(model(rep[0]))
    runners, rows = {}, {}
    for form, value in forms.items():
        rows[form] = {}
        for precision in precisions:
            copy = inference_model(model, **{**rewrites("tflite", precision), option: value})[0]
            content = convert_tflite(copy, input_size=size, precision=precision,
                                     representative=rep if precision == "int8" else None)
            runner = LiteRTRunner(content, threads=FLAGS.threads)
            got = runner(rep[0])
            rows[form][precision] = {
                "mean_rel_logit_error": float(np.abs(got - want).mean() / np.abs(want).mean()),
                "argmax_agreement": float(np.mean(got.argmax(-1) == want.argmax(-1))),
            }
            runners[f"{form} tflite_{precision}"] = runner
    return runners, rows


def main(argv):
    del argv
    import keras

    import tfseg
    from tfseg.arrays import parse_size
    from tfseg.cpuinfo import cpu_description
    from tfseg.files import write_json_atomic
    from tfseg.timing import latency_stats, time_interleaved

    size = parse_size(FLAGS.input_size, "--input_size")
    doc = {"cpu": cpu_description(), "rewrite": FLAGS.rewrite, "threads": FLAGS.threads,
           "input_size": FLAGS.input_size, "rounds": FLAGS.rounds, "networks": {}}
    print(doc["cpu"])
    for net in FLAGS.networks:
        model = tfseg.build_model(net, 19, input_shape=(*size, 3))
        if FLAGS.rewrite != "prelu":
            rng = np.random.default_rng(0)
            rep = [rng.standard_normal((1, *size, 3), dtype=np.float32) for _ in range(4)]
            if FLAGS.rewrite == "shuffle":
                runners, rows = shuffle_rows(model, size, rep)
            elif FLAGS.rewrite == "onnx_shuffle":
                runners, rows = onnx_shuffle_rows(model, size, rep)
            elif FLAGS.rewrite == "litert_outputs":
                runners, rows = litert_output_rows(model, size, rep)
            elif FLAGS.rewrite == "openvino_outputs":
                runners, rows = openvino_output_rows(model, size, rep)
            elif FLAGS.rewrite == "openvino_split_resize":
                runners, rows = openvino_split_resize_rows(model, size, rep)
                if not runners:
                    doc["networks"][net] = rows
                    print(net, json.dumps(rows))
                    continue
            elif FLAGS.rewrite == "onnx_final_resize":
                runners, rows = onnx_final_resize_rows(model, size, rep)
            elif FLAGS.rewrite == "onnx_resize":
                runners, rows = onnx_shuffle_rows(model, size, rep, "nhwc_upsamplings",
                                                  ("nchw_resize", "nhwc_resize"))
            else:
                option, forms, precisions = TFLITE_REWRITES[FLAGS.rewrite]
                runners, rows = tflite_forms(model, size, rep, option, forms, precisions)
            times = time_interleaved(runners, rep[0], warmup=2, runs=FLAGS.rounds)
            rows["median_ms"] = {k: latency_stats(t)["median_ms"] for k, t in times.items()}
            doc["networks"][net] = rows
            print(net, json.dumps(rows))
            continue
        rng = np.random.default_rng(0)
        for layer in model.layers:
            if isinstance(layer, keras.layers.PReLU):
                shape = np.asarray(layer.alpha).shape
                layer.alpha.assign(rng.uniform(0.05, 0.4, shape).astype("float32"))
        rep = [rng.standard_normal((1, *size, 3), dtype=np.float32) for _ in range(4)]
        want = np.asarray(model(rep[0])).argmax(-1)
        runners, rows = {}, {}
        for form in ("max", "leaky"):
            it, info = convert(model, size, rep, form)
            it.set_tensor(it.get_input_details()[0]["index"], rep[0])
            it.invoke()
            got = it.get_tensor(it.get_output_details()[0]["index"]).argmax(-1)
            rows[form] = {
                "partitions": info["partitions"],
                "max_form_layers": len(info.get("prelu_max_form", [])),
                "argmax_agreement": float(np.mean(got == want)),
            }
            runners[form] = it.invoke
        times = time_interleaved(runners, warmup=2, runs=FLAGS.rounds)
        for form, t in times.items():
            rows[form]["median_ms"] = latency_stats(t)["median_ms"]
        doc["networks"][net] = rows
        print(net, json.dumps(rows))
    if FLAGS.json:
        write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    app.run(main)
