"""How the verification lines were chosen: SFace and FaceNet on CelebA train and eval, never on wild photos.

    python benchmarks/verify_lines.py [--identities 500] [--photos 300]

1. Train split: the first two photos (by path) of every train identity, at the
   pipeline's own face location; every impostor pair gives how similar two
   different people are for each recognizer. The cosine at a false-accept rate
   (FAR) of 0.1%, 1% and 5% is a candidate line: a face at least that close to
   its original is as close as only that share of strangers are.
2. Eval split: one photo per identity anonymized with the default fill
   (generate, medium) without verification; the share of faces at or over each
   candidate line (SFace or FaceNet) is the share verification would send up
   the ladder.

dlib is not used here: it is the judge, and stays out of every decision.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np
import torch

from _data import DATA, eval_photos
from anon_plugin.imageio import load_rgb
from anon_plugin.inference import align, landmarks, recognition, verify
from anon_plugin.inference.pipeline import Anonymizer

FARS = (0.001, 0.01, 0.05)
NAMES = ("sface", "facenet")


def train_photos(identities: int) -> tuple[list[str], list[str]]:
    with open(DATA / "celeba" / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    by_id: dict[str, list[str]] = {}
    for r in rows:
        by_id.setdefault(r["identity"], []).append(r["path"])
    chosen = [i for i in sorted(by_id, key=int) if len(by_id[i]) >= 2][:identities]
    return [p for i in chosen for p in sorted(by_id[i])[:2]], [i for i in chosen for _ in range(2)]


def line_at(impostor: np.ndarray, far: float) -> float:
    """The cosine t with a share ``far`` of impostor pairs at or above it."""
    scores = np.sort(impostor)[::-1]
    return float(scores[int(np.floor(far * len(scores)))])


def train_lines(identities: int) -> dict[str, dict[float, float]]:
    paths, ids = train_photos(identities)
    crops, kept = [], []
    for path, identity in zip(paths, ids, strict=True):
        rgb = load_rgb(DATA / "celeba" / path)
        found = landmarks.locate(rgb)
        if found is not None:
            crops.append(align.warp(rgb, found[2].matrix, align.CROP_SIZE))
            kept.append(identity)
    ids_ = np.asarray(kept)
    upper = np.triu(np.ones((len(kept), len(kept)), bool), 1)
    same = ids_[:, None] == ids_[None]
    lines: dict[str, dict[float, float]] = {}
    print(f"train: {len(set(kept))} identities, {len(kept)} photos with a face, "
          f"{int((upper & ~same).sum()):,} impostor pairs, {int((upper & same).sum())} genuine pairs")
    print("| recognizer | FAR | line (cosine >=) | genuine pairs at or over it |\n|---|---|---|---|")
    for name in NAMES:
        e = np.concatenate([recognition.embed(np.stack(crops[i:i + 64]), name) for i in range(0, len(crops), 64)])
        sims = e @ e.T
        impostor, genuine = sims[upper & ~same], sims[upper & same]
        lines[name] = {}
        for far in FARS:
            t = line_at(impostor, far)
            lines[name][far] = t
            print(f"| {name} | {far:.1%} | {t:.3f} | {np.mean(genuine >= t):.1%} |")
        if name == "sface":
            t = recognition.RECOGNIZERS["sface"].threshold
            print(f"| sface | {np.mean(impostor >= t):.2%} | {t:.3f} (OpenCV's same-person line) | "
                  f"{np.mean(genuine >= t):.1%} |")
    return lines


def eval_scores(photos: int) -> np.ndarray:
    """(faces, 2) SFace and FaceNet cosines of generate-medium faces to their originals, unverified."""
    anonymizer = Anonymizer(method="generate", strength="medium", verify=False)
    scores = []
    for path in eval_photos(photos):
        result = anonymizer.anonymize(path)
        for face in result.faces:
            if not face.covered:
                read = align.warp(result.image, face.alignment, align.CROP_SIZE)
                similarity = verify.similarities(face.crop[None], read[None])[0]
                scores.append([similarity[f"{n}_cosine"] for n in NAMES])
    return np.asarray(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=500)
    parser.add_argument("--photos", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = train_lines(args.identities)
    scores = eval_scores(args.photos)
    print(f"\neval: {len(scores)} faces of {args.photos} photos, generate medium, unverified")
    print("| FAR of the lines | SFace line | FaceNet line | over SFace | over FaceNet | over either |\n"
          "|---|---|---|---|---|---|")
    for far in FARS:
        s, f = lines["sface"][far], lines["facenet"][far]
        over_s, over_f = scores[:, 0] >= s, scores[:, 1] >= f
        print(f"| {far:.1%} | {s:.3f} | {f:.3f} | {over_s.mean():.1%} | {over_f.mean():.1%} | "
              f"{(over_s | over_f).mean():.1%} |")


if __name__ == "__main__":
    main()
