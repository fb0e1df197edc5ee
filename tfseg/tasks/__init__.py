"""Tasks: what a model is trained for, evaluated on and predicts (the seam between the programs and
the task-specific code; see ``tfseg.tasks.base``).

``TASKS`` (``tfseg.registry``) holds ``semantic`` (the default) and ``instance``::

    task = get_task(config.task)
    model = task.build_model(config, spec.num_classes)
    task = task_for_model(model)   # the task whose outputs a loaded model has
"""

from tfseg.registry import TASKS
from tfseg.tasks.base import EvalOptions, Task
from tfseg.tasks.instance import InstanceTask
from tfseg.tasks.semantic import SemanticTask

TASKS.register("semantic")(SemanticTask)
TASKS.register("instance")(InstanceTask)


def get_task(name):
    """The task registered as ``name`` (a KeyError listing the choices otherwise)."""
    return TASKS.get(name)()


def all_tasks():
    """One instance of every registered task."""
    return [get_task(name) for name in TASKS.names()]


def task_for_model(model):
    """The task whose outputs ``model`` has: of the tasks whose ``required_kinds`` it has all,
    the one that requires the most (an instance model -> ``instance``, else ``semantic``)."""
    from tfseg.models.outputs import output_kinds

    kinds = set(output_kinds(model))
    fitting = [t for t in all_tasks() if set(t.required_kinds) <= kinds]
    return max(fitting, key=lambda t: len(t.required_kinds))


__all__ = ["TASKS", "EvalOptions", "Task", "all_tasks", "get_task", "task_for_model"]
