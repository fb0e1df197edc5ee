#!/usr/bin/env bash
# Issue 22's side-by-side on the lent machine's CPU (an Intel Xeon with AMX in session 15), which
# has torch and onnxruntime but no TensorFlow, no Keras, no OpenVINO and no network.
#
#   here:  bash tools/offline_trip.sh prepare PACK CHECKOUT
#          PACK: a folder written by experiments/reference_offline.py --pack (its int8 TFLite
#          files stay here: LiteRT is not carried, its 22 MB wheel would crowd out the pack, and
#          XNNPACK's int8 lost to fp32 there in session 15; its note says "not carried");
#          CHECKOUT: the reference zoo's checkout. Fills .trip/ (git-ignored):
#          the wheels of tools/gpu_wheels.sh and tools/openvino_carry.sh, the reference's
#          models/ and the pack, gzipped; refuses if the call would carry over 64 MiB.
#   there: run(command="bash tools/offline_trip.sh time --time_budget_s=420", carry=[".trip"])
#          installs them under /tmp, times the pack (extra flags go to --time) and leaves the
#          JSON, docs/zoo.md with its reference-offline section rewritten and lscpu under $OUT.
#
# Then copy $OUT's zoo.md section and JSON into docs/ (docs/zoo.md, Intel Xeon section).
# Rehearsed in session 39 on the development machine in a virtual environment that had only the
# lent machine's packages (torch, onnxruntime, numpy, jax; no TensorFlow, Keras, OpenVINO, NNCF
# or LiteRT), with the Python 3.11 builds of the two compiled packages in place of the 3.12 ones:
# `time --networks=enet,fastscnn --rounds=3` installed, timed and wrote both files in 38 s.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=$((64 * 1024 * 1024))

case "${1:-}" in
prepare)
    pack=${2:?PACK folder}; checkout=${3:?reference CHECKOUT}
    [[ -f "$pack/manifest.json" ]] || { echo "$pack: no manifest.json" >&2; exit 2; }
    [[ -f "$checkout/models/model_registry.py" ]] || {
        echo "$checkout: no models/model_registry.py" >&2; exit 2; }
    bash tools/gpu_wheels.sh >/dev/null
    bash tools/openvino_carry.sh >/dev/null  # always this checkout's OpenVINO, as the pack's
    rm -rf .trip.partial && mkdir -p .trip.partial/ref
    cp .whl/*.whl .whl/openvino-cpu-py3.12.tar.gz .trip.partial/
    cp -r "$checkout/models" .trip.partial/ref/
    tar -C "$pack" --exclude='*.tflite' -czf .trip.partial/pack.tar.gz .  # LiteRT: not carried
    rm -rf .trip && mv .trip.partial .trip
    tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
    trip=$(du -sb .trip | cut -f1)
    echo "carried: checkout $((tree / 1024)) KiB + .trip $((trip / 1024)) KiB" \
         "(limit $((LIMIT / 1024)) KiB)"
    if ((tree + trip > LIMIT)); then
        echo "too large for one call: pack fewer networks" >&2
        exit 1
    fi
    ;;
time)
    shift
    [[ -d .trip ]] || { echo "no .trip/ (carry=[\".trip\"])" >&2; exit 2; }
    out=${OUT:-/tmp/offline_out}
    mkdir -p /tmp/site /tmp/pack "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .trip/*.whl
    tar -xzf .trip/openvino-cpu-py3.12.tar.gz -C /tmp/site
    tar -xzf .trip/pack.tar.gz -C /tmp/pack
    export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
    lscpu >"$out/lscpu.txt"
    python3 experiments/reference_offline.py --time=/tmp/pack --reference_dir=.trip/ref \
        --json="$out/reference_offline.json" --out=docs/zoo.md "$@"
    cp docs/zoo.md "$out/"
    ;;
*)
    echo "usage: $0 prepare PACK CHECKOUT | time [reference_offline.py flags]" >&2
    exit 2
    ;;
esac
