"""One training process of the distributed tests (``test_distribute.py``).

``python distributed_worker.py CONFIG.json WEIGHTS.npz [LOGICAL_CPUS]``: trains the ``Config`` in
CONFIG.json with ``tfseg.training.train`` (its ``--distribute`` mode; ``TF_CONFIG`` from the
environment) and saves the trained weights of this process to WEIGHTS.npz (outside the run
directory: a worker that is not the chief writes nothing there). ``LOGICAL_CPUS`` > 1 splits the CPU
into that many logical devices first, so ``mirrored`` has several replicas without a GPU.
"""

import json
import sys


def main(config_path, weights_path, logical_cpus=1):
    import tensorflow as tf

    if logical_cpus > 1:  # before any other TensorFlow op
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus
        )
    import numpy as np

    from tfseg.config import Config
    from tfseg.training import Hooks, train

    with open(config_path) as f:
        config = Config.from_json(f.read())

    def save(model):
        np.savez(weights_path, *[w.numpy() for w in model.weights])

    metrics = train(config, Hooks(on_end=save))
    print("METRICS " + json.dumps({"chief": metrics.get("chief", True)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
