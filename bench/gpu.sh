#!/usr/bin/env bash
# GPU checks in one run (for a machine with an NVIDIA GPU; prints tables, writes $OUT/gpu.log):
# train-step time and MFU of base and large, the DiT time of a 10 s separation, and the
# DACVAE codec and separation benchmarks against torch on the same card's host.
#   bash bench/gpu.sh            (installs jax[cuda12] into a fresh venv when jax sees no GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
if ! python3 -c "import jax, sys; sys.exit(jax.default_backend() != 'gpu')" 2>/dev/null; then
  python3 -m venv /tmp/gpu-venv && . /tmp/gpu-venv/bin/activate
  pip install -q -e ".[cuda]" "torch==2.13.0"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.log"
date -u | tee -a "$out/gpu.log"
export PYTHONPATH=$PWD
python bench/gpu_step.py --configs base large --batch 8 --runs 5 2>&1 | tee -a "$out/gpu.log"
