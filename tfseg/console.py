"""Console scripts (pyproject.toml): ``tfseg-train`` is ``python -m tfseg.train``, and so on.

Each runs its program module as ``__main__``, as ``python -m`` does (``runpy``, with ``sys.argv[0]``
set to the module's file), so the two ways of starting a program behave the same: ``--help`` shows
the module's docstring and its flags, and the program's ``if __name__ == "__main__"`` block runs.
"""

import runpy

PROGRAMS = ("train", "evaluate", "predict", "export", "benchmark", "search")


def _run(program):
    runpy.run_module(f"tfseg.{program}", run_name="__main__", alter_sys=True)


def train():
    _run("train")


def evaluate():
    _run("evaluate")


def predict():
    _run("predict")


def export():
    _run("export")


def benchmark():
    _run("benchmark")


def search():
    _run("search")
