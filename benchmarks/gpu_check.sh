#!/usr/bin/env bash
# GPU check of issue #16 (see benchmarks/gpu_check.py). Run from the repository root on a GPU
# machine whose python3 has torch, torchvision, pandas, scikit-learn, typer, jinja2, rich and
# safetensors; fairlearn / torchattacks / ART may come through PYTHONPATH (the bias probe needs
# fairlearn; the other two are optional columns of the PGD comparison).
#   bash benchmarks/gpu_check.sh                  # prints JSON; writes $OUT/gpu_check.json
#   GPU_CHECK_N=512 GPU_CHECK_BUDGET=fast bash benchmarks/gpu_check.sh
set -euo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export CI=1  # no progress bars in captured output
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"${PYTHON:-python3}" benchmarks/gpu_check.py
