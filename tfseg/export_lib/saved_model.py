"""SavedModel with two serving signatures.

- ``serving_default``: ``images`` float32 ``[B, H, W, 3]``, normalised as ``tfseg.data.normalize``
  (H, W multiples of the model's stride) -> ``logits`` float32 ``[B, H, W, C]`` and ``labels``
  int32 ``[B, H, W]`` (argmax).
- ``serving_uint8``: ``images`` uint8 ``[B, H, W, 3]`` RGB as decoded from a file -> ``labels``
  int32 ``[B, H, W]``. Normalisation happens in the graph; with dynamic H/W the batch is padded at
  the bottom/right to the stride (with the mean colour, as ``make_eval_dataset`` does) and the
  labels are cropped back, so any image size works.

A ``--task=instance`` model adds ``instance`` float32 ``[B, H, W, 2]`` to both signatures: the
centre (y, x) of every pixel's instance in input pixels (cropped back like the labels).

Shapes: H and W dynamic unless ``input_size`` is given; batch dynamic unless ``batch_size`` is.
The folder holds the TF variables and the two traced functions only (no Keras objects): it loads
with ``tf.saved_model.load`` / TF Serving without tfseg or Keras. BN is folded by the caller.
"""

from tfseg.export_lib.graph import OUTPUT_NAMES


def write_saved_model(model, path, *, input_size=(None, None), batch_size=None, stride=32):
    """Write ``model`` as a SavedModel folder at ``path`` (which must not exist yet)."""
    import tensorflow as tf

    from tfseg.data import MEAN, STD
    from tfseg.export_lib.errors import quiet_absl
    from tfseg.export_lib.graph import INSTANCE, LOGITS, named_outputs, output_names

    names = output_names(model)
    h, w = input_size
    mean = tf.constant(MEAN, tf.float32)
    std = tf.constant(STD, tf.float32)
    float_spec = tf.TensorSpec([batch_size, h, w, 3], tf.float32, name="images")
    uint8_spec = tf.TensorSpec([batch_size, h, w, 3], tf.uint8, name="images")

    @tf.function(input_signature=[float_spec])
    def serve_float(images):
        out = named_outputs(model, images, names)
        return {**out, "labels": tf.argmax(out[LOGITS], axis=-1, output_type=tf.int32)}

    @tf.function(input_signature=[uint8_spec])
    def serve_uint8(images):
        x = (tf.cast(images, tf.float32) / 255.0 - mean) / std
        shape = tf.shape(x)
        ih, iw = shape[1], shape[2]
        if h is None or w is None:
            x = tf.pad(x, [[0, 0], [0, -ih % stride], [0, -iw % stride], [0, 0]])
        out = named_outputs(model, x, names)
        result = {"labels": tf.argmax(out[LOGITS], axis=-1, output_type=tf.int32)[:, :ih, :iw]}
        if INSTANCE in out:
            result[INSTANCE] = out[INSTANCE][:, :ih, :iw]
        return result

    module = tf.Module()
    # Only the TF variables are tracked, not the Keras objects: the SavedModel loads without tfseg
    # or Keras, and saving is ~3x faster than keras.export.ExportArchive on these graphs.
    module.variables_ = [getattr(v, "value", v) for v in model.weights]
    module.serve_float = serve_float
    module.serve_uint8 = serve_uint8
    signatures = {"serving_default": serve_float, "serving_uint8": serve_uint8}
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    with quiet_absl():
        tf.saved_model.save(module, path, signatures=signatures, options=options)


def _graph_op_types(fn):
    """``{op type: count}`` of a concrete function's graph, nested functions included."""
    import collections

    counts = collections.Counter()
    graphs, seen = [fn.graph], set()
    while graphs:
        g = graphs.pop()
        for op in g.get_operations():
            counts[op.type] += 1
        for f in getattr(g, "_functions", {}).values():
            if id(f) not in seen and hasattr(f, "graph"):
                seen.add(id(f))
                graphs.append(f.graph)
    return dict(sorted(counts.items()))


class SavedModelRunner:
    """``runner(x) -> logits`` through the ``serving_default`` signature; ``labels_uint8(img)``;
    ``outputs(x) -> {name: array}`` (``logits``, and ``instance`` for an instance model)."""

    def __init__(self, path):
        import tensorflow as tf

        self._tf = tf
        self.loaded = tf.saved_model.load(path)
        self.float_fn = self.loaded.signatures["serving_default"]
        self.uint8_fn = self.loaded.signatures["serving_uint8"]

    def __call__(self, x):
        return self.float_fn(images=self._tf.constant(x))["logits"].numpy()

    def outputs(self, x, names=None):
        out = self.float_fn(images=self._tf.constant(x))
        names = names or [k for k in OUTPUT_NAMES if k in out]
        return {k: out[k].numpy() for k in names}

    def op_types(self):
        return _graph_op_types(self.float_fn)

    def labels_uint8(self, images):
        return self.uint8_fn(images=self._tf.constant(images))["labels"].numpy()
