#!/usr/bin/env bash
# ResNet-50 images/s on a CUDA GPU: archdsl's compiled model against torchvision's, with bf16
# autocast, channels_last and torch.compile. Extra arguments go to bench/bench_gpu.py
# (e.g. --batch 128 --steps 20, or --no-compile for eager mode).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu.sh: no CUDA device')"
exec "$PY" bench/bench_gpu.py "$@"
