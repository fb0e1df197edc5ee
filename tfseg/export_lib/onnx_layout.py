"""Layout clean-up of tf2onnx's graphs: channel shuffles in NCHW, upsamplings in NHWC.

tf2onnx converts a TensorFlow (NHWC) graph to ONNX's NCHW convolutions by wrapping every
layout-sensitive op in transposes and then pushing them as far as it can; a ``Reshape`` stops them.
A channel shuffle written as reshape (g, C/g) -> transpose -> reshape
(``graph._TransposeChannelShuffle``) therefore costs three full-tensor transposes in the ONNX file:
NCHW -> NHWC, the shuffle's own transpose of two small inner axes (a slow strided copy), and
NHWC -> NCHW again. Lite-HRNet has 49 shuffles; its fp32 onnxruntime latency was twice the
PyTorch reference's ONNX, whose shuffle is one transpose of whole (H, W) planes.

``nchw_channel_shuffles`` rewrites each such chain on the NCHW tensor
(reshape (N, g, C/g, H, W) -> transpose (0, 2, 1, 3, 4) -> reshape (N, C, H, W)), keeps the NHWC
result as a transpose of it for consumers that need it, and removes the transposes back to NCHW
that follow. The same permutation of the same values: outputs are bit-identical.

``nhwc_upsamplings`` moves the transpose to NHWC that tf2onnx writes after an upsampling
``Resize`` (the logits' final upsampling above all: the model's output is NHWC) in front of it, so
that the transpose moves the small tensor and onnxruntime resizes in NHWC, which it does as fast
or faster (Fast-SCNN's x8 of 19 channels to 512x1024: 38.7 -> 18.3 ms for resize + transpose).
The same interpolation along the same axes: equal up to float rounding (1e-9 on Fast-SCNN).
"""

import numpy as np

NCHW_TO_NHWC = [0, 2, 3, 1]
NHWC_TO_NCHW = [0, 3, 1, 2]


def _perm(node):
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None


def _consumers(graph):
    users = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def nchw_channel_shuffles(proto):
    """Rewrite tf2onnx's NHWC channel shuffles of ``proto`` (an ``onnx.ModelProto``, changed in
    place) on the NCHW tensor; returns the number rewritten."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    producer = {out: node for node in graph.node for out in node.output}
    consts = {init.name: init for init in graph.initializer}
    outputs = {o.name for o in graph.output}
    users = _consumers(graph)

    def const(name):
        return numpy_helper.to_array(consts[name]) if name in consts else None

    def sole_user(name):
        nodes = users.get(name, [])
        return nodes[0] if len(nodes) == 1 and name not in outputs else None

    drop, rewritten, added = set(), 0, []
    for t2 in list(graph.node):
        if t2.op_type != "Transpose" or _perm(t2) != [0, 1, 2, 4, 3]:
            continue
        r1 = producer.get(t2.input[0])
        if r1 is None or r1.op_type != "Reshape" or sole_user(r1.output[0]) is not t2:
            continue
        t1 = producer.get(r1.input[0])
        if t1 is None or t1.op_type != "Transpose" or _perm(t1) != NCHW_TO_NHWC:
            continue
        r2 = sole_user(t2.output[0])
        if r2 is None or r2.op_type != "Reshape":
            continue
        shape5, shape4 = const(r1.input[1]), const(r2.input[1])
        if shape5 is None or shape4 is None or len(shape5) != 5 or len(shape4) != 4:
            continue
        _, h, w, g, c = (int(v) for v in shape5)
        if list(shape4[1:]) != [h, w, g * c] or min(h, w, g, c) <= 0:
            continue
        x, y = t1.input[0], r2.output[0]
        stem = r2.name or y
        a_shape, b_shape = f"{stem}/nchw_shape5", f"{stem}/nchw_shape4"
        graph.initializer.extend([
            numpy_helper.from_array(np.array([-1, g, c, h, w], np.int64), a_shape),
            numpy_helper.from_array(np.array([-1, g * c, h, w], np.int64), b_shape),
        ])
        z = f"{stem}/nchw"
        added += [
            helper.make_node("Reshape", [x, a_shape], [f"{stem}/nchw_split"],
                             name=f"{stem}/nchw_reshape5"),
            helper.make_node("Transpose", [f"{stem}/nchw_split"], [f"{stem}/nchw_swapped"],
                             perm=[0, 2, 1, 3, 4], name=f"{stem}/nchw_transpose"),
            helper.make_node("Reshape", [f"{stem}/nchw_swapped", b_shape], [z],
                             name=f"{stem}/nchw_reshape4"),
        ]
        drop.update(id(n) for n in (r1, t2, r2))
        # consumers that transpose the shuffled tensor back to NCHW read the NCHW result instead
        keep_nhwc = y in outputs
        for user in users.get(y, []):
            if (user.op_type == "Transpose" and _perm(user) == NHWC_TO_NCHW
                    and user.output[0] not in outputs):
                _rename_input(graph, user.output[0], z)
                drop.add(id(user))
            else:
                keep_nhwc = True
        if keep_nhwc:
            added.append(helper.make_node("Transpose", [z], [y], perm=NCHW_TO_NHWC,
                                          name=f"{stem}/to_nhwc"))
        rewritten += 1
    if rewritten:
        freed = {name for n in graph.node if id(n) in drop for name in n.input}
        kept = _without_dead_transposes([n for n in graph.node if id(n) not in drop] + added,
                                        outputs)
        del graph.node[:]
        graph.node.extend(_topological(kept, graph))
        read = {name for n in graph.node for name in n.input}
        unused = [i for i in graph.initializer if i.name in freed and i.name not in read]
        for init in unused:  # the dropped reshapes' shapes
            graph.initializer.remove(init)
    return rewritten


def nhwc_upsamplings(proto):
    """Rewrite each upsampling ``Resize`` (constant scales, no ROI) whose only reader is
    a 4-D ``Transpose`` as that transpose followed by the resize with permuted scales (``proto``
    changed in place); returns the number rewritten."""
    from onnx import numpy_helper

    graph = proto.graph
    consts = {init.name: init for init in graph.initializer}
    outputs = {o.name for o in graph.output}
    users = _consumers(graph)
    rewritten, stale, replaced = 0, set(), set()
    for resize in list(graph.node):
        if resize.op_type != "Resize" or resize.output[0] in outputs:
            continue
        after = users.get(resize.output[0], [])
        if len(after) != 1 or after[0].op_type != "Transpose":
            continue
        transpose, ins = after[0], list(resize.input) + [""] * (4 - len(resize.input))
        perm = _perm(transpose)
        if perm is None or len(perm) != 4 or ins[1] and ins[1] not in consts:
            continue
        if ins[1] and numpy_helper.to_array(consts[ins[1]]).size:  # a crop-and-resize ROI
            continue
        if ins[3] or ins[2] not in consts:  # sizes, or scales computed at run time
            continue
        scales = numpy_helper.to_array(consts[ins[2]])
        if scales.shape != (4,) or np.prod(scales) < 1:  # a downsampling: transpose after it
            continue
        x, y, mid = resize.input[0], transpose.output[0], f"{resize.output[0]}/nhwc"
        stale.add(resize.output[0])
        transpose.input[0], transpose.output[0] = x, mid
        resize.input[0], resize.output[0] = mid, y
        # tf2onnx names the last node of a rewrite after the TF op (how problems are traced back
        # to Keras layers): the resize is now last
        resize.name, transpose.name = transpose.name, resize.name
        name = f"{ins[2]}/nhwc"
        if name not in consts:
            consts[name] = numpy_helper.from_array(scales[perm].astype(scales.dtype), name)
            graph.initializer.append(consts[name])
        replaced.add(ins[2])
        resize.input[2] = name
        rewritten += 1
    if rewritten:
        nodes = list(graph.node)
        del graph.node[:]
        graph.node.extend(_topological(nodes, graph))
        read = {name for n in graph.node for name in n.input}
        for init in [i for i in graph.initializer if i.name in replaced - read]:
            graph.initializer.remove(init)  # scales that only the rewritten resizes read
        for info in [v for v in graph.value_info if v.name in stale]:
            graph.value_info.remove(info)  # the NCHW resize outputs that no longer exist
    return rewritten


# activations f with f(0) = 0 that may sit between the convolution and the concatenation
_ZERO_PRESERVING = ("Relu", "LeakyRelu", "Clip")


def pool_concat_adds(proto, max_channels=4):
    """Rewrite each ENet-style downsampler on an input of at most ``max_channels`` channels,
    ``Concat(act(Conv(x)), MaxPool(x))`` on the channel axis (either order), as
    ``Add(act(Conv'(x)), Conv1x1(MaxPool(x)))`` (``proto`` changed in place); returns the number
    rewritten.

    ``Conv'`` is the convolution with C_in more output channels whose weights and biases are zero
    (so ``act`` gives 0 there: ReLU, leaky ReLU or a clip around 0), and the 1x1
    convolution places the pooled channels at their output positions with weights 1 (0
    elsewhere): the same values, exactly (x * 0, x * 1 and + 0 are exact in float).

    Why: on the network's 3-channel input, the convolution branch has C - 3 channels (29 in
    LEDNet and AGLNet), which OpenVINO's blocked layouts cannot concatenate in place; it
    reorders both branches to a plain layout and back (LEDNet int8: 18 ms of reorders, 12 of
    them in a reference kernel, under the AVX2 profile). The extra multiply-adds are
    k * k * C_in * C_in + C_in * C per output pixel (k x k kernel, C_in <= 4)."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    consts = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    users = _consumers(graph)
    outputs = {o.name for o in graph.output}

    def sole(name, node):
        return name not in outputs and [id(u) for u in users.get(name, [])] == [id(node)]

    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def bound(node, i, default):
        if len(node.input) <= i or not node.input[i]:
            return default
        return float(numpy_helper.to_array(consts[node.input[i]])) if node.input[i] in consts \
            else None

    def zero_preserving(act):
        if act.op_type == "Clip":
            lo = bound(act, 1, attr(act, "min", -np.inf))
            hi = bound(act, 2, attr(act, "max", np.inf))
            return lo is not None and hi is not None and lo <= 0 <= hi
        return True

    rewritten, stale, dropped = 0, set(), set()
    for cat in list(graph.node):
        if cat.op_type != "Concat" or len(cat.input) != 2 or attr(cat, "axis") not in (1, -3):
            continue
        nodes = [producer.get(name) for name in cat.input]
        if None in nodes or [n.op_type == "MaxPool" for n in nodes].count(True) != 1:
            continue
        pool_first = nodes[0].op_type == "MaxPool"
        pool, act = (nodes[0], nodes[1]) if pool_first else (nodes[1], nodes[0])
        conv = act
        if act.op_type in _ZERO_PRESERVING:
            conv = producer.get(act.input[0])
            if conv is None or not sole(conv.output[0], act) or not zero_preserving(act):
                continue
        else:
            act = None
        if (conv.op_type != "Conv" or conv.input[0] != pool.input[0] or conv.input[1] not in consts
                or (len(conv.input) > 2 and conv.input[2] and conv.input[2] not in consts)
                or attr(conv, "group", 1) != 1 or not sole(pool.output[0], cat)
                or not sole((act or conv).output[0], cat)):
            continue
        w = numpy_helper.to_array(consts[conv.input[1]])
        if w.ndim != 4 or w.shape[1] > max_channels or w.dtype != np.float32:
            continue
        c_out, c_in = w.shape[0], w.shape[1]
        has_bias = len(conv.input) > 2 and conv.input[2]
        b = numpy_helper.to_array(consts[conv.input[2]]) if has_bias else np.zeros(c_out, w.dtype)
        zeros_w = np.zeros((c_in,) + w.shape[1:], w.dtype)
        zeros_b = np.zeros(c_in, w.dtype)
        place = np.zeros((c_in + c_out, c_in, 1, 1), w.dtype)
        offset = 0 if pool_first else c_out
        place[offset + np.arange(c_in), np.arange(c_in), 0, 0] = 1.0
        stem = cat.name or cat.output[0]
        wide_w = np.concatenate([zeros_w, w] if pool_first else [w, zeros_w])
        wide_b = np.concatenate([zeros_b, b] if pool_first else [b, zeros_b])
        names = (f"{stem}/wide_kernel", f"{stem}/wide_bias", f"{stem}/placement")
        for arr, name in zip((wide_w, wide_b, place), names):
            graph.initializer.append(numpy_helper.from_array(arr, name))
        replaced = set(conv.input[1:]) - {""}
        del conv.input[1:]
        conv.input.extend(names[:2])
        placed = f"{stem}/pool_placed"
        i = list(graph.node).index(cat)
        graph.node.remove(cat)
        graph.node.insert(i, helper.make_node("Add", [(act or conv).output[0], placed],
                                              [cat.output[0]], name=cat.name))
        graph.node.insert(i, helper.make_node("Conv", [pool.output[0], names[2]], [placed],
                                              kernel_shape=[1, 1], name=placed))
        stale.update([conv.output[0]] + ([act.output[0]] if act is not None else []))
        dropped |= replaced
        rewritten += 1
    if rewritten:
        read = {name for n in graph.node for name in n.input}
        for init in [i for i in graph.initializer if i.name in dropped - read]:
            graph.initializer.remove(init)  # the narrow kernels and biases
        for info in [v for v in graph.value_info if v.name in stale]:
            graph.value_info.remove(info)  # their shapes have C_in more channels now
    return rewritten


def _without_dead_transposes(nodes, outputs):
    """``nodes`` less the transposes that nothing reads any more (to NHWC before a rewritten
    shuffle, possibly shared by several)."""
    while True:
        read = {name for n in nodes for name in n.input} | outputs
        dead = {id(n) for n in nodes if n.op_type == "Transpose" and n.output[0] not in read}
        if not dead:
            return nodes
        nodes = [n for n in nodes if id(n) not in dead]


def _rename_input(graph, old, new):
    """Every node that reads ``old`` reads ``new`` instead (``old`` is not a graph output)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _topological(nodes, graph):
    """``nodes`` in an order where every input is produced before it is read."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(nodes), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"ONNX graph has a cycle or a missing input at {rest[0].name}")
        pending = rest
    return ordered
