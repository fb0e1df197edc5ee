"""The package's layering: no import cycle, no lower layer importing a higher one, no private Keras
attributes outside the export graph rewriting (docs/architecture.md)."""

import ast
import os
import re

import tfseg

ROOT = os.path.dirname(tfseg.__file__)
# Lower layers: model code and data. They never import the training, evaluation, export or program
# layers.
LOWER = ("layers", "encoders", "decoders", "models", "losses", "metrics", "data", "registry",
         "files", "flops", "config")
HIGHER = ("training", "trainer", "tasks", "evaluation", "evaluate", "export", "export_lib", "bench",
          "benchmark", "train", "predict", "search")
PRIVATE_KERAS = re.compile(r"\._keras_history|\._inbound_nodes|\._outbound_nodes")
GRAPH_CODE = (os.path.join("export_lib", "graph.py"),)


def _modules():
    """``{dotted module name: path}`` of every module of the package."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(ROOT))
                name = rel[:-3].replace(os.sep, ".")
                found[name[: -len(".__init__")] if name.endswith(".__init__") else name] = (
                    os.path.join(folder, f)
                )
    return found


def _imports(path, module, is_package):
    """Dotted tfseg modules that ``path`` imports (at any depth: function-level imports count)."""
    tree = ast.parse(open(path).read(), path)
    out = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m == "tfseg" or m.startswith("tfseg.")}


def _graph():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for imported in _imports(path, name, path.endswith("__init__.py")):
            # Importing a.b.c runs a/__init__ and a/b/__init__ first.
            parts = imported.split(".")
            for i in range(2, len(parts) + 1):
                candidate = ".".join(parts[:i])
                # A module's own enclosing packages are already being imported: not an edge.
                if candidate in modules and not (name + ".").startswith(candidate + "."):
                    deps.add(candidate)
        graph[name] = deps
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _top(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycles():
    # The package's __init__ re-exports the public API, so edges into "tfseg" itself are left out.
    graph = {m: {d for d in deps if d != "tfseg"} for m, deps in _graph().items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_lower_layers_do_not_import_higher_ones():
    bad = [
        f"{module} imports {dep}"
        for module, deps in _graph().items()
        if _top(module) in LOWER
        for dep in deps
        if _top(dep) in HIGHER
    ]
    assert not bad, "\n".join(sorted(bad))


def test_no_private_keras_attributes_outside_the_graph_rewriting():
    bad = []
    for _name, path in _modules().items():
        if path.endswith(GRAPH_CODE):
            continue
        for i, line in enumerate(open(path), 1):
            if PRIVATE_KERAS.search(line):
                bad.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()}")
    assert not bad, "\n".join(bad)
