"""A bank of faces of nobody, measured: what the ``stylegan`` fill picks its candidates from.

    python -m anon_plugin.training.face_bank SAMPLES.safetensors BANK.safetensors [--count 2400] [--threads 2]

Two steps, the first slow and resumable:

1. **Draw** (into SAMPLES, rewritten every 25 samples; a run continues where
   the file ends): sample ``i`` is z = ``stylegan.latents(BANK_SEED + i)``,
   w = mapping(z) truncated by ``PSI``, synthesized at 1024 px; YuNet and dlib
   find its face at 512 px. Kept: w, the 68 points (1024 px frame) and the
   canonical crop (256 px), or ``found`` = 0. About 1.8 s a sample on 2 cores.
2. **Measure** (into BANK, which ships): per found sample its traits
   (``traits.measure``), skin tone and SFace and FaceNet embeddings, read on
   its canonical crop exactly as the fill reads the face it replaces. No
   picture ships, only the numbers.

Deterministic on the CPU: the same count gives the same files.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from ..inference import align, landmarks, registry, traits
from ..inference.networks.stylegan import latents

BANK_SEED = 1_000_000
PSI = 0.7  # truncation: 1 is the full variety of the prior, 0 its average face
MEASURE_SIZE = 512
BATCH = 64


def draw(out: Path, count: int) -> None:
    """Step 1: synthesize samples up to ``count`` into ``out`` (continuing it)."""
    prior = registry.load("stylegan")
    rows: dict[str, list[np.ndarray]] = {"w": [], "found": [], "landmarks": [], "crop": []}
    if out.exists():
        rows = {k: list(v) for k, v in load_file(str(out)).items()}
    start, first = time.perf_counter(), len(rows["w"])
    for i in range(first, count):
        with torch.inference_mode():
            w = prior.truncate(prior.style(torch.from_numpy(latents(BANK_SEED + i))), PSI)
        small = cv2.resize(prior.images(w)[0], (MEASURE_SIZE,) * 2, interpolation=cv2.INTER_AREA)
        found = landmarks.locate(small)
        rows["w"].append(w[0].numpy())
        rows["found"].append(np.array(found is not None, np.uint8))
        if found is None:
            rows["landmarks"].append(np.zeros((68, 2), np.float32))
            rows["crop"].append(np.zeros((align.CROP_SIZE, align.CROP_SIZE, 3), np.uint8))
        else:
            _, points, alignment = found
            rows["landmarks"].append((points * (1024 / MEASURE_SIZE)).astype(np.float32))
            rows["crop"].append(align.warp(small, alignment.matrix, align.CROP_SIZE))
        if (i + 1) % 25 == 0 or i + 1 == count:
            tmp = out.with_suffix(".part")
            save_file({k: np.stack(v) for k, v in rows.items()}, str(tmp), metadata={"psi": str(PSI)})
            os.replace(tmp, out)
            print(f"{i + 1} samples, {(time.perf_counter() - start) / (i + 1 - first):.2f} s each", flush=True)


def measure(samples: Path, out: Path) -> None:
    """Step 2: the numbers the fill matches, per found sample of ``samples``, into ``out``."""
    from ..inference.recognition import embed

    drawn = load_file(str(samples))
    found = np.flatnonzero(drawn["found"])
    n = len(drawn["found"])
    points = np.zeros((n, 68, 2), np.float32)
    for i in found:  # the canonical crop's points, from the same alignment the crop was cut with
        small = drawn["landmarks"][i] * (MEASURE_SIZE / 1024)
        points[i] = align.transform(align.align(landmarks.five_points(small)).matrix, small)
    bank = {"w": drawn["w"], "found": drawn["found"], "landmarks": drawn["landmarks"],
            "traits": np.zeros((n, len(traits.NAMES)), np.float32), "tone": np.zeros((n, 3), np.float32),
            "sface": np.zeros((n, 128), np.float16), "facenet": np.zeros((n, 512), np.float16)}
    for start in range(0, len(found), BATCH):
        rows = found[start:start + BATCH]
        crops = drawn["crop"][rows]
        bank["traits"][rows] = traits.measure(crops, points[rows])
        bank["tone"][rows] = [traits.skin_tone(c, p) for c, p in zip(crops, points[rows], strict=True)]
        bank["sface"][rows] = embed(crops, "sface")
        bank["facenet"][rows] = embed(crops, "facenet")
    save_file(bank, str(out), metadata={"traits": ",".join(traits.NAMES), "psi": str(PSI), "seed": str(BANK_SEED)})
    print(f"measured {len(found)} of {n} samples into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, help="the drawn samples (step 1), kept out of the repository")
    parser.add_argument("out", type=Path, help="the measured bank (step 2), models/stylegan_bank.safetensors")
    parser.add_argument("--count", type=int, default=2400)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    draw(args.samples, args.count)
    measure(args.samples, args.out)


if __name__ == "__main__":
    main()
