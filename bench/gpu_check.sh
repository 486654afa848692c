#!/usr/bin/env bash
# The prepared check for a lent GPU machine (H100/H200), issue 12: installs what it needs from the package index,
# runs every fast path's equivalence test on the GPU, then the benchmark suite. Writes under $OUT if set, else
# bench/results/. Under 8 minutes on an H100.
#   bench/gpu_check.sh          # on the GPU machine
#   bench/gpu_check.sh --smoke  # the same steps end to end on CPU (quick rows), in CI time
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
RESULTS="${OUT:-bench/results}"
mkdir -p "$RESULTS"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ ! -x .venv-gpu/bin/python ]]; then
    python3 -m venv .venv-gpu
    .venv-gpu/bin/pip install -q torch==2.14.1 torchvision==0.29.1 -e '.[dev]'
  fi
  PY=.venv-gpu/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# On a lent GPU machine each step is bounded so the whole check fits its lease; the CPU smoke run (a pass/fail test)
# has no bound of its own: a busy machine is slow, not broken, and the caller's timeout catches a real hang.
if [[ $SMOKE == 1 ]]; then
  DEVICE=cpu
  TESTS=(-m "not slow")
  BENCH=(--quick)
  LIMIT=()
else
  DEVICE=cuda
  LIMIT=(timeout 300)
  "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device; use --smoke on CPU")'
  TESTS=()
  BENCH=()
fi
"$PY" -c 'import platform, torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "python",
platform.python_version(), "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")' \
  | tee "$RESULTS/gpu_check-env.txt"
STUDY_TEST_DEVICE=$DEVICE "${LIMIT[@]}" "$PY" -m pytest -q -p no:cacheprovider tests/test_fast_paths.py "${TESTS[@]}" \
  | tee "$RESULTS/fast_paths-$DEVICE.txt"
"${LIMIT[@]}" "$PY" -m bench "${BENCH[@]}" --out "$RESULTS"
echo "gpu_check: results in $RESULTS"
