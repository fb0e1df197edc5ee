#!/usr/bin/env bash
# Fetch, here, the wheels that tools/gpu_benchmark.py needs on the lent GPU machine: its image has
# Python 3.12, JAX, PyTorch, numpy, h5py, ml-dtypes, rich, absl-py and packaging, but not Keras
# (nor Keras' own needs namex and optree, nor cityscapesscripts, whose label table tfseg imports),
# and it cannot download anything. The wheels go to .whl/ (git-ignored; about 3 MB), which a
# device call carries. docs/gpu.md has the commands.
set -euo pipefail
cd "$(dirname "$0")/.."
KERAS_VERSION=$(python -c "import keras; print(keras.__version__)")
mkdir -p .whl
python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "keras==${KERAS_VERSION}" namex optree cityscapesscripts
ls -l .whl
