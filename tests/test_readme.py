"""The README matches the code: its model table names the registered models, its architecture tree
names what exists, it links nowhere outside the repository and it stays a short guide.

Nothing here builds a model: the table's rows are compared with the registry (name, kind, stride,
paper); params and GFLOPs come from ``python tools/model_table.py``.
"""

import os
import re

import tfseg  # noqa: F401  (fills the registries)
from tfseg.models import table

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- model-table:start -->", "<!-- model-table:end -->"
MAX_LINES = 260
REGENERATE = (
    "the README's model table is out of date: run `python tools/model_table.py --write` (or run "
    "`python tools/model_table.py` and paste its output between the model-table markers of "
    "README.md; with the package installed, or PYTHONPATH=.)"
)


def _readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def _table_rows(text):
    assert text.count(START) == 1 and text.count(END) == 1, f"README.md needs one {START} / {END}"
    inner = text.split(START)[1].split(END)[0]
    lines = [line for line in inner.splitlines() if line.strip().startswith("|")]
    assert lines[:2] == table.HEADER.splitlines(), "the model table's header is not table.HEADER"
    return lines[2:]


def test_model_table_names_the_registered_models():
    found = [table.parse_row(line) for line in _table_rows(_readme())]
    wanted = [table.parse_row(table.row(*e, measure=False)) for e in table.table_entries()]
    missing = [w for w in wanted if w not in found]
    extra = [f for f in found if f not in wanted]
    assert not missing and not extra, (
        f"{REGENERATE}\nregistered but missing or different in the README (name, kind, stride, "
        f"paper): {missing}\nin the README but not registered so: {extra}"
    )


# --------------------------------------------------------------------------------------------------
# The architecture tree
# --------------------------------------------------------------------------------------------------

NAME = re.compile(r"^[\w.-]+/?$")


def _tree_block(text):
    """The lines of the first code block after the ``## Architecture`` heading."""
    section = text.split("\n## Architecture\n", 1)[1]
    block = section.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


def tree_paths(text):
    """Repository-relative paths named in the tree: ``(directories, files)``.

    Each line is ``<indent><name> [<name> ...]`` then, after two or more spaces, a description;
    a name ending in ``/`` is a folder, and each level of two spaces of indentation is inside the
    folder named last one level up.
    """
    dirs, files, parents = set(), set(), []
    for line in _tree_block(text):
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0, f"tree line not indented by a multiple of 2: {line!r}"
        level = indent // 2
        assert level <= len(parents), f"tree line indented below no folder: {line!r}"
        names = re.split(r"\s{2,}", line.strip())[0].split(" ")
        assert all(NAME.match(n) for n in names), f"tree line does not start with names: {line!r}"
        parents = parents[:level]
        for name in names:
            path = "/".join(parents + [name.rstrip("/")])
            (dirs if name.endswith("/") else files).add(path)
        if len(names) == 1 and names[0].endswith("/"):
            parents.append(names[0].rstrip("/"))
    return dirs, files


def test_architecture_tree_names_what_exists():
    dirs, files = tree_paths(_readme())
    assert "tfseg" in dirs
    missing = sorted(d + "/" for d in dirs if not os.path.isdir(os.path.join(ROOT, d)))
    missing += sorted(f for f in files if not os.path.isfile(os.path.join(ROOT, f)))
    assert not missing, f"the README's architecture tree names what does not exist: {missing}"


def test_every_package_is_in_the_architecture_tree():
    dirs, _ = tree_paths(_readme())
    packages = []
    for folder, subdirs, filenames in os.walk(os.path.join(ROOT, "tfseg")):
        subdirs[:] = [d for d in subdirs if d != "__pycache__"]
        if "__init__.py" in filenames:
            packages.append(os.path.relpath(folder, ROOT).replace(os.sep, "/"))
    absent = sorted(p + "/" for p in packages if p not in dirs)
    assert not absent, f"packages missing from the README's architecture tree: {absent}"


def test_no_links_outside_the_repository():
    text = _readme()
    found = [line for line in text.splitlines() if re.search(r"https?://", line)]
    assert not found, "README.md links outside the repository:\n" + "\n".join(found)


def test_relative_links_resolve():
    text = _readme()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    broken = sorted({t for t in targets if not os.path.exists(os.path.join(ROOT, t))})
    assert not broken, f"README.md links to missing files: {broken}"


def test_readme_is_a_short_guide():
    # The generated model table (one row per registered model) grows with the zoo; the prose must
    # not.
    text = _readme()
    start, end = "<!-- model-table:start -->", "<!-- model-table:end -->"
    text = text[: text.index(start)] + text[text.index(end) :]
    lines = text.count("\n")
    assert lines < MAX_LINES, (
        f"README.md has {lines} lines outside the model table; keep it under {MAX_LINES} "
        f"(measurements go to docs/results.md, details to docs/usage.md)"
    )
