"""How a fill looks and what it hides, on whole photos: detail kept, identity left, faces covered, time.

    python benchmarks/fill_quality.py [--photos wild|eval] [--limit N] [--method stylegan] [--strength medium]
                                      [--no-verify] [--threads 2] [--tiles DIR]

Each photo goes through the engine (verify on unless ``--no-verify``) with
``measure=True``. Per face:

- **detail ratio**: variance of the Laplacian (grey) over the pixels the
  engine changed inside the face's box, output over original, at the photo's
  full resolution (1: as much fine detail as before; a soft patch is far below);
- **dlib judge**: distance under 0.6 between original and result at the
  original landmarks (never consulted by the engine);
- covered faces, fallbacks, and seconds per face end to end (detection to
  blend, measuring not).

``--tiles DIR`` writes each face as original | result side by side at 100%
(never commit CelebA pictures: they are research-only and stay out of the repository).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch

from _data import DATA, eval_photos
from anon_plugin.imageio import load_rgb
from anon_plugin.inference import recognition
from anon_plugin.inference.pipeline import Anonymizer, AnonymizerConfig


def detail_ratio(original: np.ndarray, result: np.ndarray, box: np.ndarray) -> float | None:
    """Laplacian variance over the changed pixels of the box, result over original (None: nothing changed)."""
    h, w = original.shape[:2]
    x0, y0 = np.maximum(np.floor(box[:2]).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(box[2:]).astype(int), [w, h])
    a, b = original[y0:y1, x0:x1], result[y0:y1, x0:x1]
    changed = np.abs(a.astype(int) - b).max(2) > 0
    if changed.sum() < 16:
        return None

    def lap(x: np.ndarray) -> np.ndarray:
        return cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)

    return float(lap(b)[changed].var() / max(lap(a)[changed].var(), 1e-6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", choices=("wild", "eval"), default="wild")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--method", default="stylegan")
    parser.add_argument("--strength", default="medium")
    parser.add_argument("--candidates", type=int, default=AnonymizerConfig.candidates)
    parser.add_argument("--no-verify", dest="verify", action="store_false")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiles", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = (sorted((DATA / "wild" / "images").glob("*.jpg")) if args.photos == "wild"
              else eval_photos(24))[: args.limit]
    anonymizer = Anonymizer(method=args.method, strength=args.strength, verify=args.verify, measure=True,
                            candidates=args.candidates)
    if args.tiles:
        args.tiles.mkdir(parents=True, exist_ok=True)
    ratios, dlib, covered, n, seconds = [], 0, 0, 0, 0.0
    ended, fallbacks = Counter(), Counter()
    for path in photos:
        original = load_rgb(path)
        start = time.perf_counter()
        result = anonymizer.anonymize(path)
        seconds += time.perf_counter() - start - sum(f.seconds.get("measure", 0.0) for f in result.faces)
        for index, face in enumerate(result.faces):
            n += 1
            covered += face.covered
            ended[face.steps[-1].split(":")[0] if face.steps else "none"] += 1
            if face.quality and "fallback" in face.quality:
                fallbacks[face.quality["reason"].split(" (")[0]] += 1
            ratio = None if face.covered else detail_ratio(original, result.image, face.box)
            if ratio is not None:
                ratios.append(ratio)
            matched = face.similarity is not None and "dlib" in recognition.still_matched_by(face.similarity)
            dlib += matched
            s = face.similarity or {}
            print(f"{path.name} face {index}: {face.box[2] - face.box[0]:.0f} px, steps {' > '.join(face.steps)}, "
                  f"detail {ratio if ratio is None else round(ratio, 3)}, "
                  f"dlib {s.get('dlib_distance', float('nan')):.3f}"
                  f"{' MATCHED' if matched else ''}, sface {s.get('sface_cosine', float('nan')):.3f}"
                  f", facenet {s.get('facenet_cosine', float('nan')):.3f}"
                  f"{', ' + face.quality['reason'] if face.quality and 'fallback' in face.quality else ''}"
                  f"{', preview ' + str(face.quality.get('preview_excess')) if face.quality else ''}"
                  f"{', shading gap ' + str(face.quality.get('shading_gap')) if face.quality else ''}", flush=True)
            if args.tiles:
                x0, y0, x1, y1 = face.box
                gx, gy = 0.3 * (x1 - x0), 0.3 * (y1 - y0)
                ys = slice(max(int(y0 - gy), 0), int(y1 + gy))
                xs = slice(max(int(x0 - gx), 0), int(x1 + gx))
                pair = np.hstack([original[ys, xs], result.image[ys, xs]])
                cv2.imwrite(str(args.tiles / f"{path.stem}_{index}.png"), pair[:, :, ::-1])
    r = np.array(ratios)
    print(f"\n{len(photos)} {args.photos} photos, {n} faces, {args.method} {args.strength}, "
          f"verify {'on' if args.verify else 'off'}, {args.candidates} candidate(s)")
    if len(r):
        print(f"detail ratio over {len(r)} filled faces: median {np.median(r):.3f}, 10th percentile "
              f"{np.percentile(r, 10):.3f}, 90th {np.percentile(r, 90):.3f}")
    print(f"dlib judge matches {dlib} of {n} faces; covered {covered} ({covered / max(n, 1):.1%})")
    print(f"faces ended at: {dict(ended)}; fallbacks: {dict(fallbacks)}")
    print(f"{seconds / max(n, 1):.3f} s per face end to end (detection included, measuring not), "
          f"{torch.get_num_threads()} torch thread(s)")


if __name__ == "__main__":
    main()
