"""Verification on whole photos: where each face ends on the ladder, how many are covered, what dlib still matches.

    python benchmarks/verify_wild.py [--photos wild|eval] [--limit N] [--method generate] [--strength medium]
                                     [--no-verify]

``wild``: the 80 unaligned photos of ../shared/data/wild (never used to choose
anything); ``eval``: one CelebA eval photo per identity (300), where the lines
were checked. Each photo goes through the default policy's engine options
(generate, medium, verify) with ``measure=True``: after the ladder, the face
is compared with its original at the original's landmarks by SFace, FaceNet
and the dlib judge (distance under 0.6: the same person), which no step consulted.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np
import torch

from _data import DATA, eval_photos
from anon_plugin.inference import recognition, verify
from anon_plugin.inference.pipeline import Anonymizer
from anon_plugin.evaluate.calibrate import CELEBA_TRAIN_THRESHOLD
from anon_plugin.evaluate.metrics import SFACE_THRESHOLD
from anon_plugin.inference.recognition import DLIB_THRESHOLD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", choices=("wild", "eval"), default="wild")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--method", default="generate")
    parser.add_argument("--strength", default="medium")
    parser.add_argument("--no-verify", dest="verify", action="store_false", help="the fill alone, for comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    photos = (sorted((DATA / "wild" / "images").glob("*.jpg")) if args.photos == "wild"
              else eval_photos(300))[: args.limit]
    anonymizer = Anonymizer(method=args.method, strength=args.strength, verify=args.verify, measure=True)
    ended, reached, faces, dlib, sface, facenet, seconds = Counter(), Counter(), [], 0, 0, 0, 0.0
    for path in photos:
        start = time.perf_counter()
        result = anonymizer.anonymize(path)
        seconds += time.perf_counter() - start - sum(f.seconds.get("measure", 0.0) for f in result.faces)
        for face in result.faces:
            faces.append(face)
            rungs = [verify.rung(s) for s in face.steps]
            ended[rungs[-1]] += 1
            reached.update(set(rungs))
            if face.similarity is None:
                continue
            matched = recognition.still_matched_by(face.similarity)  # SFace and dlib at their published lines
            dlib += "dlib" in matched
            sface += "sface" in matched
            facenet += face.similarity["facenet_cosine"] > CELEBA_TRAIN_THRESHOLD
    n = len(faces)
    print(f"{len(photos)} {args.photos} photos, {n} faces, {args.method} {args.strength}, "
          f"verify {'on' if args.verify else 'off'}; "
          f"lines SFace {verify.LINES['sface']}, FaceNet {verify.LINES['facenet']}")
    print("| step | faces that reached it | faces that ended there |\n|---|---|---|")
    for r in verify.RUNGS:
        print(f"| {r} | {reached[r]} ({reached[r] / n:.1%}) | {ended[r]} ({ended[r] / n:.1%}) |")
    print(f"dlib judge (distance < {DLIB_THRESHOLD}) matches {dlib} of {n} faces ({dlib / n:.1%}); "
          f"SFace (>= {SFACE_THRESHOLD}) {sface}; FaceNet (> {CELEBA_TRAIN_THRESHOLD}) {facenet}")
    print(f"covered: {ended['covered']} of {n} ({ended['covered'] / n:.1%})")
    errors = Counter(f.error.split(" (")[0] for f in faces if f.covered)
    for error, count in errors.items():
        print(f"  covered because: {error}: {count}")
    print("the five faces closest to their original for dlib:")
    for f in sorted((f for f in faces if f.similarity), key=lambda f: f.similarity["dlib_distance"])[:5]:
        s = f.similarity
        print(f"  dlib {s['dlib_distance']:.3f}, SFace {s['sface_cosine']:.3f}, FaceNet {s['facenet_cosine']:.3f}, "
              f"box {f.box[2] - f.box[0]:.0f} px, steps {' > '.join(f.steps)}")
    print(f"{seconds / n:.3f} s per face end to end (detection included, measuring not)")
    print(f"mean final cosines: SFace {np.mean([f.similarity['sface_cosine'] for f in faces if f.similarity]):.3f}, "
          f"FaceNet {np.mean([f.similarity['facenet_cosine'] for f in faces if f.similarity]):.3f}")


if __name__ == "__main__":
    main()
