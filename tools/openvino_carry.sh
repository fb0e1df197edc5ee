#!/usr/bin/env bash
# Pack, here, OpenVINO's CPU runtime for a machine that cannot download it: the lent GPU machine
# (Python 3.12, torch, onnxruntime, numpy; no OpenVINO, no network), where
# experiments/reference_offline.py --time runs the openvino, openvino_int8 and openvino_bf16
# candidates of issue 22's comparison. The wheel is 59 MB, near the 64 MiB a device call carries
# with the checkout, so only what runs an IR on a CPU is kept: the CPU plugin, the IR reader and
# the Python package, without the GPU and NPU plugins, the GPU kernel cache and the ONNX /
# TensorFlow / PyTorch / Paddle / JAX / GGUF readers (29 MB gzipped). Writes
# .whl/openvino-cpu-py<version>.tar.gz (git-ignored); this checkout's OpenVINO version, so that
# the pack's IRs and the runtime agree. There:
#   mkdir -p /tmp/site && tar -xzf .whl/openvino-cpu-py3.12.tar.gz -C /tmp/site && \
#   export PYTHONPATH=/tmp/site:.
# PYTHON_VERSION=3.11 packs for this machine's Python instead: extracted into a folder put first
# on PYTHONPATH, it is how the trimmed package was checked here (it compiled and ran the packed
# IRs on the CPU). The tests do not use it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
VERSION=$(python -c "import openvino; print(openvino.__version__.split('-')[0])" 2>/dev/null) || {
    echo "openvino is not installed here (pip install -r requirements-export.txt)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$tmp" "openvino==${VERSION}" openvino-telemetry
mkdir "$tmp/site"
for wheel in "$tmp"/*.whl; do python -m zipfile -e "$wheel" "$tmp/site"; done
libs="$tmp/site/openvino/libs"
rm -f "$libs"/libopenvino_intel_gpu_plugin.so "$libs"/libopenvino_intel_npu_plugin.so \
    "$libs"/cache.json
for reader in onnx paddle pytorch tensorflow tensorflow_lite jax gguf; do
    rm -f "$libs"/libopenvino_${reader}_frontend.so.*
done
for reader in onnx paddle pytorch tensorflow jax; do
    rm -f "$tmp/site/openvino/frontend/$reader"/py_*_frontend.*.so
done
mkdir -p .whl
out=".whl/openvino-cpu-py${PYTHON_VERSION}.tar.gz"
tar -C "$tmp/site" -czf "$out.partial" . && mv "$out.partial" "$out"
ls -l "$out"
