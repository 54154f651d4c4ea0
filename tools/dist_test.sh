#!/usr/bin/env bash
# Multi-GPU testing on one machine.
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [--out results.jsonl] [--cfg-options ...]
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
PORT=${PORT:-29500}
cd "$(dirname "$0")/.."
python -m torch.distributed.run --nproc_per_node="$GPUS" --master_port="$PORT" \
    tools/test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
