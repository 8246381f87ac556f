"""Fit the face prior's preview head: a quarter-size picture from the synthesis's 128 px features.

    python -m anon_plugin.training.face_prior_preview OUT.safetensors [--count 100] [--test 12] [--threads 2]

MobileStyleGAN's synthesis draws the picture only at its last layer (1024 px,
most of its cost); the exported graph keeps no smaller output. Its 128 px
features (``TAP``, 256 channels, a tenth of the cost) already hold the face: a
linear map from each feature pixel (and a bias) to the 2 x 2 RGB pixels above
it in the 256 px picture, fitted by least squares on ``count`` samples
(z = ``stylegan.latents(SEED + i)``, psi 0.7), draws it. ``test`` more samples
report how close the preview is: PSNR against the full picture reduced to
256 px, and the SFace and FaceNet cosines between the two faces. The fill
screens its candidates on previews, never publishes one. Deterministic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.numpy import save_file

from ..inference import align, landmarks, registry
from ..inference.networks.stylegan import latents
from ..inference.recognition import embed

TAP = "726"  # the 128 px features of the synthesis graph (PReLU after the fifth block), 256 channels
SEED = 2_000_000
PSI = 0.7
RIDGE = 1.0


def _blocks(image: np.ndarray) -> np.ndarray:
    """A (2h, 2w, 3) picture in [-1, 1] as (h * w, 12): each feature pixel's 2 x 2 RGB block."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    return image.reshape(h, 2, w, 2, 3).transpose(0, 2, 1, 3, 4).reshape(h * w, 12)


def _sample(prior, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (h * w, C + 1) with a column of ones, and the full picture reduced to 256 px (uint8)."""
    with torch.inference_mode():
        w = prior.truncate(prior.style(torch.from_numpy(latents(SEED + i))), PSI)
        features = prior.synthesis(w, until=TAP)[0].numpy()
        image = prior.images(w)[0]
    c = features.shape[0]
    x = np.concatenate([features.reshape(c, -1).T, np.ones((features[0].size, 1), np.float32)], 1)
    return x.astype(np.float64), cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--test", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prior = registry.load("stylegan")
    xtx, xty = 0.0, 0.0
    for i in range(args.count):
        x, image = _sample(prior, i)
        xtx, xty = xtx + x.T @ x, xty + x.T @ _blocks(image / 127.5 - 1)
    head = np.linalg.solve(xtx + RIDGE * np.eye(x.shape[1]), xty)
    psnr, cosines = [], []
    for i in range(args.count, args.count + args.test):
        x, image = _sample(prior, i)
        h = image.shape[0] // 2
        preview = (x @ head).reshape(h, h, 2, 2, 3).transpose(0, 2, 1, 3, 4).reshape(2 * h, 2 * h, 3)
        preview = ((preview.clip(-1, 1) + 1) * 127.5).round().astype(np.uint8)
        psnr.append(float(10 * np.log10(255**2 / ((preview.astype(float) - image) ** 2).mean())))
        found = landmarks.locate(image)
        if found is not None:
            pair = np.stack([align.warp(p, found[2].matrix, align.CROP_SIZE) for p in (image, preview)])
            cosines.append([float(np.prod(embed(pair, name), axis=0).sum()) for name in ("sface", "facenet")])
    medians = np.round(np.median(cosines, 0), 3).tolist()
    report = {"samples": args.count, "test": args.test, "psnr": round(float(np.mean(psnr)), 2),
              "median_cosine": dict(zip(("sface", "facenet"), medians, strict=True))}
    save_file({"head": head.astype(np.float32)}, str(args.out), metadata={"tap": TAP, "report": json.dumps(report)})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
