"""A bank of faces of nobody, measured: the data the face prior's edit directions are learned from.

    python -m anon_plugin.training.face_bank OUT.safetensors [--count 2000] [--psi 0.7] [--threads 1]

Sample ``i`` is z = ``stylegan.latents(BANK_SEED + i)``, w = mapping(z)
truncated by ``psi``, synthesized at 1024 px; YuNet and dlib find its face at
512 px, and ``traits.measure`` reads it in the canonical crop. Rows whose face
is not found are kept with ``found`` = 0. The file is rewritten every 20
samples and a run resumes from it, so it can be stopped and continued.
Deterministic: the same count and psi give the same file on the CPU.
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
MEASURE_SIZE = 512


def measure_sample(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Traits and 68 landmarks (1024 px frame) of a generated RGB image, or None when no face is found."""
    small = cv2.resize(image, (MEASURE_SIZE, MEASURE_SIZE), interpolation=cv2.INTER_AREA)
    found = landmarks.locate(small)
    if found is None:
        return None
    _, points, alignment = found
    crop = align.warp(small, alignment.matrix, align.CROP_SIZE)
    measured = traits.measure(crop[None], align.transform(alignment.matrix, points)[None])[0]
    return measured, points * (image.shape[0] / MEASURE_SIZE)


def _save(out: Path, rows: dict[str, list], psi: float) -> None:
    arrays = {k: np.stack(v) for k, v in rows.items()}
    tmp = out.with_suffix(".part")
    save_file(arrays, str(tmp), metadata={"psi": str(psi), "seed": str(BANK_SEED), "traits": ",".join(traits.NAMES)})
    os.replace(tmp, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--psi", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = registry.load("stylegan")
    rows: dict[str, list] = {"w": [], "traits": [], "landmarks": [], "found": []}
    if args.out.exists():
        rows = {k: list(v) for k, v in load_file(str(args.out)).items()}
    start, first = time.perf_counter(), len(rows["w"])
    for i in range(first, args.count):
        w = prior.truncate(prior.style(torch.from_numpy(latents(BANK_SEED + i))), args.psi)
        measured = measure_sample(prior.images(w)[0])
        rows["w"].append(w[0].numpy())
        rows["found"].append(np.array(measured is not None, np.uint8))
        rows["traits"].append(measured[0] if measured else np.zeros(len(traits.NAMES), np.float32))
        rows["landmarks"].append(measured[1].astype(np.float32) if measured else np.zeros((68, 2), np.float32))
        if (i + 1) % 20 == 0 or i + 1 == args.count:
            _save(args.out, rows, args.psi)
            print(f"{i + 1} samples, {(time.perf_counter() - start) / (i + 1 - first):.2f} s each", flush=True)


if __name__ == "__main__":
    main()
