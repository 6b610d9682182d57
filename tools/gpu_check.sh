#!/usr/bin/env bash
# The GPU check (tools/gpu_check.py), with its log beside the results:
#   bash tools/gpu_check.sh CIFAR_ARCHIVE_OR_FOLDER [OUT_DIR] [extra gpu_check.py flags]
set -euo pipefail
data="${1:?usage: tools/gpu_check.sh CIFAR_ARCHIVE_OR_FOLDER [OUT_DIR] [flags]}"
out="${2:-runs/gpu_check}"
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "$out"
cd "$(dirname "$0")/.."
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
python tools/gpu_check.py --data-dir "$data" --out "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
