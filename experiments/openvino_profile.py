"""Where OpenVINO's CPU plugin spends a network's time, by node type and the precision its kernel
ran in (issue 22: the float islands of an int8 graph):

    PYTHONPATH=. python -m tfseg.bench.isa --isa=avx2 -- python experiments/openvino_profile.py \
        --networks=adscnet,fddwnet,mininetv2,espnetv2,dfanet,fastscnn \
        --json=docs/openvino_profile_avx2.json

Per network (random weights with BN statistics from the calibration inputs, as tfseg.benchmark
builds it): the IR of ``tfseg.export --format=openvino --precision=PRECISION`` (NNCF on the 4
calibration inputs for int8), compiled as ``OpenVINORunner`` compiles it with ``PERF_COUNT`` on,
``--warmup`` untimed runs, then ``--runs`` profiled ones. Each executed node's ``real_time`` goes
to (node type, kernel precision): ``i8`` where its ``exec_type`` names an 8-bit kernel
(``jit_avx2_I8``, ``U8``...), ``f32`` where it names a float one (``brgconv_avx2_f32``,
``jit_avx2_f32``, ``ref_f32``). The sum is the plugin's node time per run (less than the wall
time of a call, which adds the request's own overhead).

The convolutions' multiply-adds (from the IR's shapes) over their profiled time give their
rate, ``conv_gmac_per_s``: under the AVX2 profile OpenVINO's int8 kernels ran at about 205-225
GMAC/s, twice the fp32 matrix multiply (docs/results.md, "Without VNNI: how far from the peak").

Session 29 found this way the float islands it removed (the 3-channel downsampler's reorders and
the channel shuffles; docs/results.md, "Float islands in OpenVINO's int8 graphs").
"""

import collections

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """The script's flags (defined when it runs, so that importing it leaves the process's flags
    alone)."""
    flags.DEFINE_list("networks", ["adscnet"], "zoo networks", flag_values=fv)
    flags.DEFINE_string("input_size", "512x1024", "HxW", flag_values=fv)
    flags.DEFINE_enum("precision", "int8", ["fp32", "int8"], "IR precision", flag_values=fv)
    flags.DEFINE_integer("threads", 2, "CPU threads", flag_values=fv)
    flags.DEFINE_integer("warmup", 2, "untimed runs first", flag_values=fv)
    flags.DEFINE_integer("runs", 4, "profiled runs", flag_values=fv)
    flags.DEFINE_string("json", None, "write the split here", flag_values=fv)


def kernel_precision(exec_type):
    """``"i8"``, ``"f32"`` or the ``exec_type`` itself (e.g. ``"undef"`` for a node that did not
    run a kernel) of one profiled node."""
    low = exec_type.lower()
    if "i8" in low or "u8" in low:
        return "i8"
    if "f32" in low:
        return "f32"
    return exec_type


def split(profiles, runs):
    """``{"<node type>/<precision>": ms per run}`` (largest first, 0.05 ms and up) from
    ``runs`` lists of OpenVINO ``ProfilingInfo``."""
    by = collections.Counter()
    for infos in profiles:
        for p in infos:
            by[f"{p.node_type}/{kernel_precision(p.exec_type)}"] += (
                p.real_time.total_seconds() * 1e3 / runs)
    return {k: round(v, 2) for k, v in by.most_common() if v >= 0.05}


def conv_macs(op):
    """Multiply-adds of one OpenVINO ``Convolution`` / ``GroupConvolution`` node (static shapes),
    else 0."""
    kind = op.get_type_name()
    if kind not in ("Convolution", "GroupConvolution"):
        return 0
    w = list(op.input(1).get_partial_shape().to_shape())
    out = list(op.output(0).get_partial_shape().to_shape())
    per_output = w[-3] * w[-2] * w[-1]  # input channels (of its group) x kernel rows x columns
    return int(out[1] * out[2] * out[3] * per_output)


def conv_rate(profiles, runs, macs):
    """``(GMAC, ms per run, GMAC/s)`` of the convolutions in ``profiles`` (``runs`` lists of
    ``ProfilingInfo``), ``macs``: ``{node name: multiply-adds}`` (``conv_macs``)."""
    ms = sum(p.real_time.total_seconds() * 1e3 for infos in profiles for p in infos
             if p.node_name in macs) / runs  # fmt: skip
    gmac = sum(macs.values()) / 1e9
    return round(gmac, 2), round(ms, 1), round(gmac / ms * 1e3, 1) if ms > 0 else None


def profile(name, size, precision, threads, warmup, runs):
    import keras
    import numpy as np
    import openvino as ov

    import tfseg
    from tfseg.arrays import padded_size
    from tfseg.bench.runtimes import calibration_inputs, export_copy
    from tfseg.export_lib import openvino_export as ovx
    from tfseg.export_lib.onnx_export import convert_onnx
    from tfseg.models import stride_of
    from tfseg.models.batchnorm import recalibrate_batchnorm

    size = padded_size(size, stride_of(name))
    model = tfseg.build_model(name, 19, input_shape=(*size, 3))
    cal = calibration_inputs(size)
    recalibrate_batchnorm(model, [np.concatenate(cal)])
    proto = convert_onnx(export_copy(model, {}, "openvino", precision), opset=17,
                         input_shape=(1, *size), nhwc_upsamplings=False)  # fmt: skip
    ov_model = ovx.from_onnx(proto)
    if precision == "int8":
        ov_model = ovx.quantize(ov_model, cal)
    config = {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads,
              "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}  # fmt: skip
    request = ov.Core().compile_model(ov_model, "CPU", config).create_infer_request()
    for _ in range(warmup):
        request.infer({0: cal[0]})
    profiles = []
    for _ in range(runs):
        request.infer({0: cal[0]})
        profiles.append(list(request.profiling_info))
    keras.backend.clear_session()
    kinds = split(profiles, runs)
    macs = {op.get_friendly_name(): conv_macs(op) for op in ov_model.get_ops()}
    gmac, ms, rate = conv_rate(profiles, runs, {k: v for k, v in macs.items() if v})
    return {"node_ms": round(sum(kinds.values()), 1), "by_kind_ms": kinds,
            "conv_gmac": gmac, "conv_ms": ms, "conv_gmac_per_s": rate}  # fmt: skip


def main(argv):
    del argv
    import openvino

    from tfseg.config import parse_size
    from tfseg.cpuinfo import cpu_description
    from tfseg.files import write_json_atomic

    size = parse_size(FLAGS.input_size, "--input_size")
    doc = {"cpu": cpu_description(), "openvino": openvino.__version__,
           "threads": FLAGS.threads, "input_size": FLAGS.input_size,
           "precision": FLAGS.precision, "runs": FLAGS.runs, "rows": {}}  # fmt: skip
    for name in FLAGS.networks:
        row = profile(name, size, FLAGS.precision, FLAGS.threads, FLAGS.warmup, FLAGS.runs)
        doc["rows"][name] = row
        top = "; ".join(f"{k} {v:.1f}" for k, v in list(row["by_kind_ms"].items())[:8])
        print(f"{name}: {row['node_ms']:.1f} ms: {top}; convolutions {row['conv_gmac']} GMAC in "
              f"{row['conv_ms']} ms = {row['conv_gmac_per_s']} GMAC/s", flush=True)
        if FLAGS.json:
            write_json_atomic(FLAGS.json, doc)


if __name__ == "__main__":
    define_flags()
    app.run(main)
