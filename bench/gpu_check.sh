#!/usr/bin/env bash
# The GPU checks of the speed issue as one prepared run, for a lent device machine (no network there).
#
#   1. bench/train_gpu.py: our train (tinyr1 settings) against plain TRL, tokens/s and MFU, 0.5B shape;
#   2. bench/merge.py --device cuda --size 1.5b against --device cpu, branchmerge only (no mergekit there).
#
# The device image has torch and transformers; the rest comes as wheels built here and carried along:
#   pip download --no-deps -d wheels trl==$(python -c 'import trl; print(trl.__version__)') accelerate \
#       datasets pyarrow dill xxhash multiprocess fsspec pydantic pydantic-core rich typer
#   run: bash bench/gpu_check.sh wheels    (carry: wheels; pip says so if the image lacks another one)
# Untested on a device so far: no machine was lent to the session that wrote it.
# Every step's output goes to $OUT (or ./gpu-check), each under its own time-out (550 s in all: a device
# command may run 600 s), so a run cut short still returns what it finished.
set -uo pipefail
WHEELS=${1:-wheels}
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
if [ -d "$WHEELS" ]; then
  pip install -q --no-index --find-links "$WHEELS" "$WHEELS"/*.whl 2>&1 | tail -3
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the benches import branchmerge from this checkout
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 220 python bench/train_gpu.py --steps 20 --warmup 4 2>&1 | tee "$OUT/train_gpu.txt"
timeout 180 python bench/merge.py --device cuda --size 1.5b --no-mergekit --methods arcee_fusion,ties,linear \
  --modes compat --json "$OUT/merge_cuda.json" 2>&1 | tee "$OUT/merge_cuda.txt"
timeout 150 python bench/merge.py --device cpu --size 1.5b --no-mergekit --methods arcee_fusion,linear \
  --modes compat --json "$OUT/merge_cpu.json" 2>&1 | tee "$OUT/merge_cpu.txt"
