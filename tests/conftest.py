import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TFSEG_QUIET", "1")

# Modules with a test or fixture of 40 s or more (``--durations`` on the 2-core Zen 3), longest
# first: they run before the rest so that pytest-xdist's workers finish on short tests together,
# not one idle while the other runs a 100 s test that happened to be collected last (tests/training
# sorts after every other folder). Each module moves whole: its module fixtures are set up once.
RUN_FIRST = (
    "test_backends.py",
    "training/test_distribute.py",
    "training/test_end_to_end.py",
    "training/test_ema_precision.py",
    "test_search.py",
    "instance/test_instance_e2e.py",
    "bench/test_backend_bench.py",
    "export/test_export_auto.py",
    "training/test_distill.py",
    "data/test_progressive.py",
    "bench/test_reference_offline.py",
)


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    rank = {name: i for i, name in enumerate(RUN_FIRST)}

    def key(item):
        path = os.path.relpath(str(item.path), here).replace(os.sep, "/")
        return rank.get(path, len(RUN_FIRST))

    items.sort(key=key)  # stable: every other test keeps its place
