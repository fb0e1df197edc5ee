"""pyproject.toml: console scripts, packages, package data; dependencies = requirements*.txt."""

import ast
import fnmatch
import importlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest
import setuptools

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ("train", "evaluate", "predict", "export", "benchmark", "search")


def _pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _requirements(name):
    """Requirement lines of a requirements file, without comments and ``-r`` includes."""
    lines = []
    with open(os.path.join(REPO, name)) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                lines.append(line)
    return lines


def _package_dirs():
    """{dotted name: has an __init__.py} of every folder under tfseg/ holding Python files."""
    out = {}
    for root, dirs, files in os.walk(os.path.join(REPO, "tfseg")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if any(f.endswith(".py") for f in files):
            name = os.path.relpath(root, REPO).replace(os.sep, ".")
            out[name] = "__init__.py" in files
    return out


def test_console_scripts_are_the_programs(monkeypatch):
    """tfseg-<program> runs tfseg.<program> as __main__, as `python -m tfseg.<program>` does."""
    scripts = _pyproject()["project"]["scripts"]
    assert set(scripts) == {f"tfseg-{p}" for p in PROGRAMS}
    import runpy

    calls = []
    monkeypatch.setattr(runpy, "run_module", lambda *a, **kw: calls.append((a, kw)))
    for program in PROGRAMS:
        module_name, _, attr = scripts[f"tfseg-{program}"].partition(":")
        function = getattr(importlib.import_module(module_name), attr)
        assert callable(function), scripts[f"tfseg-{program}"]
        function()
        assert calls.pop() == ((f"tfseg.{program}",), {"run_name": "__main__", "alter_sys": True})
        program_module = importlib.import_module(f"tfseg.{program}")
        assert callable(program_module.main) and callable(program_module.define_flags)


@pytest.mark.slow
def test_console_script_help_is_the_programs():
    """`tfseg-benchmark --help` prints what `python -m tfseg.benchmark --help` prints."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    console = "import sys, tfseg.console as c; sys.argv[1:] = ['--help']; c.benchmark()"
    outputs = []
    for args in (["-c", console], ["-m", "tfseg.benchmark", "--help"]):
        proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        outputs.append((proc.returncode, proc.stdout))
    assert outputs[0] == outputs[1]
    assert "--input_size" in outputs[0][1] and "Measure a model" in outputs[0][1]


def test_packages_cover_every_package_folder():
    dirs = _package_dirs()
    assert [d for d, has_init in dirs.items() if not has_init] == []  # would be left out silently
    find = _pyproject()["tool"]["setuptools"]["packages"]["find"]
    found = setuptools.find_packages(
        where=REPO, include=find.get("include", ("*",)), exclude=find.get("exclude", ())
    )
    assert sorted(found) == sorted(dirs)


def test_package_data_covers_every_data_file():
    """Every file under tfseg/ other than Python sources is in the package data."""
    package_data = _pyproject()["tool"]["setuptools"].get("package-data", {})
    missing = []
    for root, dirs, files in os.walk(os.path.join(REPO, "tfseg")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        package = os.path.relpath(root, REPO).replace(os.sep, ".")
        for f in files:
            if f.endswith((".py", ".pyc")):
                continue
            patterns = package_data.get(package, []) + package_data.get("*", [])
            if not any(fnmatch.fnmatch(f, p) for p in patterns):
                missing.append(os.path.join(os.path.relpath(root, REPO), f))
    assert missing == []


def test_dependencies_mirror_the_requirements_files():
    project = _pyproject()["project"]
    assert project["dependencies"] == _requirements("requirements.txt")
    extras = project["optional-dependencies"]
    assert extras["export"] == _requirements("requirements-export.txt")
    with open(os.path.join(REPO, "requirements-test.txt")) as f:
        includes = [line.split()[1] for line in f if line.startswith("-r ")]
    assert includes == ["requirements.txt", "requirements-export.txt"]
    assert extras["test"] == extras["export"] + _requirements("requirements-test.txt")


def test_version_is_read_from_the_package():
    import tfseg

    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tfseg.__version__"}
    assert tfseg.__version__


@pytest.mark.parametrize(
    "script",
    sorted(
        os.path.join(folder, f)
        for folder in ("tools", "experiments")
        for f in os.listdir(os.path.join(REPO, folder))
        if f.endswith(".py")
    ),
)
def test_scripts_import_the_installed_package(script):
    """No sys.path edit in tools/ and experiments/: they import the package as installed.

    Read, not loaded: a script may define its flags on import (experiments/zoo_table.py)."""
    with open(os.path.join(REPO, script)) as f:
        source = f.read()
    assert "sys.path" not in source
    tree = ast.parse(source, script)
    assert "main" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


@pytest.mark.slow
def test_wheel_holds_the_packages_and_scripts(tmp_path):
    """Build the wheel (from a copy: no build/ or egg-info in the checkout) and look inside."""
    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (64, 0):
        pytest.skip(f"setuptools {setuptools.__version__} < 64 (the build requirement)")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    shutil.copytree(
        os.path.join(REPO, "tfseg"), src / "tfseg", ignore=shutil.ignore_patterns("__pycache__")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("tfseg-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = zf.read(entry_points).decode()
    for package in _package_dirs():
        assert package.replace(".", "/") + "/__init__.py" in names, package
    assert "tfseg/deploy/README.md" in names
    assert not any(n.startswith(("tests/", "tools/", "experiments/")) for n in names)
    for program in PROGRAMS:
        assert f"tfseg-{program} = tfseg.console:{program}" in scripts
