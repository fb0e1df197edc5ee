"""``FrozenTeacher``: a model run as a frozen layer, always in inference mode (knowledge
distillation, ``tfseg.training.distill``)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfseg")
class FrozenTeacher(keras.layers.Layer):
    """Runs ``teacher`` (a one-output logits model) in inference mode with no gradient, whatever
    the ``training`` flag of the model it is part of."""

    def __init__(self, teacher, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.teacher = teacher
        self.teacher.trainable = False

    def build(self, input_shape):
        self.built = True

    def call(self, images):
        # no ``training`` argument: the enclosing model cannot switch the teacher to training mode
        return ops.stop_gradient(_first(self.teacher(images, training=False)))

    def compute_output_spec(self, images):
        return _first(self.teacher.compute_output_spec(images))

    def get_config(self):
        config = super().get_config()
        config["teacher"] = keras.saving.serialize_keras_object(self.teacher)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        teacher = keras.saving.deserialize_keras_object(config.pop("teacher"))
        return cls(teacher, **config)


def _first(outputs):
    """The logits of a one-output model (a model read from a ``.keras`` file returns a list)."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs
