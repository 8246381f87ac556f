"""Time per face with and without verification, on the CPU.

    python benchmarks/verify_speed.py [--photos wild|eval] [--limit 80] [--method generate] [--threads 1]

Every photo is anonymized both ways, one after the other (so that the
machine's load falls on both alike), models warm; decoding not included.
"verify" is the verification passes themselves (SFace and FaceNet on the
original and the anonymized crop); the rest of the difference is the
ladder's extra fills and pastes for the faces that climbed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _data import DATA, eval_photos
from anon_plugin.imageio import load_rgb
from anon_plugin.inference.pipeline import Anonymizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", choices=("wild", "eval"), default="wild")
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument("--method", default="generate")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = (sorted((DATA / "wild" / "images").glob("*.jpg")) if args.photos == "wild"
             else eval_photos(300))[: args.limit]
    images = [load_rgb(p) for p in paths]
    ways = {"without": Anonymizer(method=args.method, verify=False), "with": Anonymizer(method=args.method)}
    for anonymizer in ways.values():
        anonymizer.anonymize(images[0])  # load the models
    seconds = {w: [] for w in ways}
    verify, climbed, faces = [], 0, 0
    for rgb in images:
        for way, anonymizer in ways.items():
            start = time.perf_counter()
            result = anonymizer.anonymize(rgb)
            seconds[way].append(time.perf_counter() - start)
            if way == "with":
                faces += len(result.faces)
                verify += [f.seconds.get("verify", 0.0) for f in result.faces]
                climbed += sum(len(f.steps) > 1 for f in result.faces)
    print(f"{len(images)} {args.photos} photos, {faces} faces, {args.method} medium, CPU, "
          f"{torch.get_num_threads()} torch thread(s), {torch.get_num_interop_threads()} interop")
    print("| verification | s per face (mean) | s per photo (median) |\n|---|---|---|")
    for way, values in seconds.items():
        print(f"| {way} | {sum(values) / faces:.3f} | {np.median(values):.3f} |")
    extra = (sum(seconds["with"]) - sum(seconds["without"])) / faces
    print(f"difference: {extra:.3f} s per face, of which the verification passes {np.mean(verify):.3f} s "
          f"(median {np.median(verify):.3f}); {climbed} of {faces} faces climbed at least one step")


if __name__ == "__main__":
    main()
