"""Training on several devices and machines (``--distribute=none|mirrored|multi_worker``) with
TensorFlow's own strategies and Keras' ``fit``.

- ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local GPUs (without one, over the
  logical CPU devices: one, unless the process split the CPU).
- ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` across processes and machines,
  set up by the standard ``TF_CONFIG`` environment variable (checked by ``parse_tf_config``).

``--batch_size`` is the global batch: ``fit`` splits every batch between the replicas, and for
several workers the input pipeline is sharded by data (``AutoShardPolicy.DATA``: each worker takes
its slice of every global batch, so the batches are those of a one-process run with the same seed).
Keras scales each replica's loss by ``1 / replicas`` and the strategy sums the gradients, so the
update is that of the one-process run; the learning rate is never rescaled (the linear scaling
rule is the user's choice: docs/training.md). ``--sync_bn`` computes BatchNorm statistics over the
global batch (Keras' ``synchronized=True``).

Only the chief (the ``chief`` task, or worker 0 when the cluster has none) writes: checkpoints,
logs, ``model.keras`` and ``metrics.json``; the other workers write nothing. Every worker reads the
chief's checkpoint to ``--resume``, so the run directory must be on storage that every machine sees
(an NFS mount, for example) when a multi-worker run is resumed.

Keras 3.15's ``fit`` fails with more than one worker (keras-team/keras#20585): it reduces the scalar
logs of a step over an axis 0 they do not have, and its symbolic build averages one input batch
across workers with an eager collective that cannot take the distributed values. Under any
strategy that symbolic build also takes its batch from the training iterator, so with a repeated
dataset (tfseg's) the first batch is never trained on. ``patch_keras_for_multi_worker`` replaces
exactly these two steps: under a multi-worker strategy scalar logs are averaged over the replicas
(``axis=None``), and under any strategy the symbolic build gets zeros shaped like the dataset's
batches (it needs shapes only) instead of a batch from the iterator. Everything else is Keras'
own ``fit``.
"""

import json
import os

MODES = ("none", "mirrored", "multi_worker")


class DistributeError(ValueError):
    """A distributed run cannot be set up (reason in the message)."""


def parse_tf_config(text):
    """``(cluster, task_type, task_index)`` from a ``TF_CONFIG`` JSON string, checked: a clear
    error when it does not parse, lacks the cluster or the task, names an address twice or points
    at a task that is not in the cluster."""
    if not text:
        raise DistributeError(
            "--distribute=multi_worker needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise DistributeError(f"TF_CONFIG is not valid JSON ({e}): {text!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise DistributeError(f"TF_CONFIG needs a 'cluster' object: {text!r}")
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise DistributeError(f"TF_CONFIG needs a 'task' with 'type' and 'index': {text!r}")
    cluster = config["cluster"]
    addresses = []
    for kind, members in cluster.items():
        if kind not in ("chief", "worker"):
            raise DistributeError(
                f"TF_CONFIG cluster has a {kind!r} job; multi-worker training uses 'chief' and "
                f"'worker' only"
            )
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise DistributeError(f"TF_CONFIG cluster[{kind!r}] must be a list of 'host:port'")
        addresses += members
    repeated = sorted({a for a in addresses if addresses.count(a) > 1})
    if repeated:
        raise DistributeError(
            f"TF_CONFIG names {', '.join(repeated)} more than once: every task needs its own "
            "host:port"
        )
    kind, index = task["type"], task["index"]
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise DistributeError(
            f"TF_CONFIG task {kind!r} {index!r} is not in the cluster {json.dumps(cluster)}"
        )
    if len(cluster.get("chief", [])) > 1:
        raise DistributeError("TF_CONFIG may name one chief at most")
    return cluster, kind, index


def chief_of(cluster, task_type, task_index):
    """Whether this task is the chief: the ``chief`` task, or worker 0 without one."""
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_index == 0


_PATCHED = False


def patch_keras_for_multi_worker():
    """Replace the two steps of Keras' TF trainer that go wrong under a strategy (module
    docstring); idempotent; runs without a strategy are untouched."""
    global _PATCHED
    if _PATCHED:
        return
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    multi_worker = trainer._collective_all_reduce_multi_worker
    reduce_per_replica = trainer.reduce_per_replica
    symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_logs(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):

            def mean(v):
                if isinstance(v, (tf.Tensor, tf.distribute.DistributedValues)):
                    return strategy.reduce("MEAN", v, axis=None)
                return v

            return tree.map_structure(mean, values)
        return reduce_per_replica(values, strategy, reduction)

    def build_from_spec(self, iterator=None, data_batch=None):
        if iterator is not None and self._distribute_strategy is not None:
            # zeros shaped like one batch of the dataset (an unknown batch: 1; unknown sizes: 256,
            # a multiple of every model's stride): the build is symbolic and needs shapes only
            spec = iterator.data_adapter.get_tf_dataset().element_spec

            def zeros(s):
                shape = [(1 if i == 0 else 256) if d is None else d for i, d in enumerate(s.shape)]
                return tf.zeros(shape, s.dtype)

            data_batch = tree.map_structure(zeros, spec)
            iterator = None
        return symbolic_build(self, iterator=iterator, data_batch=data_batch)

    trainer.reduce_per_replica = reduce_logs
    trainer.TensorFlowTrainer._maybe_symbolic_build = build_from_spec
    _PATCHED = True


class Distribution:
    """The strategy of a run and this process's role in it.

    Attributes:
      mode: one of ``MODES``.
      strategy: the ``tf.distribute`` strategy (``None`` for ``none``: Keras' default).
      is_chief: whether this process writes the run's files.
      replicas: replicas in sync (1 for ``none``).
      workers: processes in the run.
    """

    def __init__(self, mode="none", strategy=None, is_chief=True, workers=1):
        self.mode = mode
        self.strategy = strategy
        self.is_chief = is_chief
        self.workers = workers
        self.replicas = strategy.num_replicas_in_sync if strategy is not None else 1

    def scope(self):
        """The strategy's scope (a no-op context without one): build and compile inside it."""
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def check_batch(self, batch_size, what="--batch_size"):
        if batch_size % self.replicas:
            raise DistributeError(
                f"{what}={batch_size} is the global batch; it must be a multiple of the "
                f"{self.replicas} replicas of --distribute={self.mode}"
            )


def make_distribution(mode, environ=None):
    """The ``Distribution`` of ``--distribute=mode``. Create it before any other TensorFlow op of
    the process: collective ops are configured at start-up."""
    environ = os.environ if environ is None else environ
    if mode not in MODES:
        raise DistributeError(f"unknown --distribute={mode!r}; choose one of {', '.join(MODES)}")
    if mode == "none":
        return Distribution()
    import tensorflow as tf

    patch_keras_for_multi_worker()
    if mode == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        # every local GPU; without one, every logical CPU device (one, unless the process split
        # the CPU with tf.config.set_logical_device_configuration, as the tests do)
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        return Distribution(mode, tf.distribute.MirroredStrategy(devices))
    cluster, kind, index = parse_tf_config(environ.get("TF_CONFIG", ""))
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    workers = sum(len(v) for v in cluster.values())
    return Distribution(mode, strategy, chief_of(cluster, kind, index), workers)


def shard_by_data(dataset):
    """``dataset`` with data-based auto-sharding (each worker takes its slice of every batch)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def synchronize_batchnorm(model):
    """``--sync_bn``: every BatchNormalization layer of ``model`` computes its training statistics
    over the global batch; returns how many."""
    count = 0
    for layer in _batchnorms(model):
        layer.synchronized = True
        count += 1
    return count


def unsynchronize_batchnorm(model):
    """Undo ``synchronize_batchnorm`` (``model.keras`` stays loadable on every Keras backend)."""
    for layer in _batchnorms(model):
        layer.synchronized = False


def _batchnorms(model):
    """Every BatchNormalization layer of ``model``, nested models (a shared encoder) included."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _batchnorms(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            yield layer
