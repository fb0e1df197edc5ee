"""Helpers of the programs (``tfseg.train``, ``tfseg.evaluate``, ``tfseg.predict``): flags for the
task options, and the options back from the parsed flags. Only programs import this module.

A task's options are a dataclass whose fields are ``tfseg.config.option(...)`` fields; each becomes
one flag (enum for ``choices``, else by the type of its default), so a new task needs no changes in
the programs.
"""

from absl import flags

from tfseg.config import option_fields


def define_option_flags(fv, cls, groups=None):
    """Define one flag on ``fv`` per ``option`` field of ``cls`` (of ``groups``, default all)."""
    for field in option_fields(cls, groups):
        meta, default = field.metadata, field.default
        name, help_text = meta["flag"], meta["help"]
        bound = {} if meta["lower_bound"] is None else {"lower_bound": meta["lower_bound"]}
        if meta["choices"]:
            flags.DEFINE_enum(name, default, list(meta["choices"]), help_text, flag_values=fv)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_text, flag_values=fv)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_text, flag_values=fv, **bound)
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, help_text, flag_values=fv, **bound)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=fv)


def define_task_flags(fv, groups=None):
    """The option flags of every registered task (each options class once)."""
    from tfseg.tasks import all_tasks

    for cls in _option_classes(all_tasks()):
        define_option_flags(fv, cls, groups)


def options_from_flags(fv, cls, groups=None):
    """An instance of ``cls`` with its ``option`` fields (of ``groups``) from the parsed flags."""
    return cls(**{f.name: fv[f.metadata["flag"]].value for f in option_fields(cls, groups)})


def task_options_from_flags(fv, task, groups=None):
    """``task``'s options from the flags (None for a task without options)."""
    return options_from_flags(fv, task.options, groups) if task.options else None


def given_option_flags(fv, cls, groups=None):
    """``--name`` of every ``option`` flag of ``cls`` given on the command line."""
    names = [f.metadata["flag"] for f in option_fields(cls, groups)]
    return [f"--{name}" for name in names if fv[name].present]


def _option_classes(tasks):
    classes = []
    for task in tasks:
        if task.options is not None and task.options not in classes:
            classes.append(task.options)
    return classes
