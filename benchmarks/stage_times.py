"""Time per face for each pipeline stage, and how many wild photos get anonymized.

    python benchmarks/stage_times.py [--method inpaint] [--limit 80] [--no-verify]

Runs the 80 unaligned photos of ../shared/data/wild through the library
(models warmed up first; decoding and encoding not included).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _data import DATA
from anon_plugin import Anonymizer
from anon_plugin.imageio import read_picture

STAGES = ("landmarks", "align", "saliency", "mask", "fill", "blend", "verify")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="inpaint")
    parser.add_argument("--limit", type=int, default=80)
    parser.add_argument("--no-verify", dest="verify", action="store_false")
    args = parser.parse_args()
    photos = sorted((DATA / "wild" / "images").glob("*.jpg"))[: args.limit]
    anonymizer = Anonymizer(method=args.method, verify=args.verify)
    images = [read_picture(p).rgb for p in photos]
    anonymizer.anonymize(images[0])  # load the models
    per_stage: dict[str, list[float]] = {s: [] for s in STAGES}
    detect, total, faces, anonymized = [], 0.0, 0, 0
    for rgb in images:
        start = time.perf_counter()
        result = anonymizer.anonymize(rgb)
        total += time.perf_counter() - start
        detect.append(result.seconds["detect"])
        faces += len(result.faces)
        anonymized += any(not f.covered for f in result.faces)
        for face in result.faces:
            for stage in STAGES:
                if stage in face.seconds:
                    per_stage[stage].append(face.seconds[stage])
    print(f"{len(photos)} wild photos, {faces} faces, method {args.method}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"photos with at least one face found and anonymized: {anonymized} / {len(photos)}")
    print("| stage | ms per face (mean) | median |\n|---|---|---|")
    print(f"| detect (per photo) | {1000 * np.mean(detect):.1f} | {1000 * np.median(detect):.1f} |")
    for stage, values in per_stage.items():
        print(f"| {stage} | {1000 * np.mean(values):.1f} | {1000 * np.median(values):.1f} |")
    print(f"| end to end (per face, detection included) | {1000 * total / max(faces, 1):.1f} | |")


if __name__ == "__main__":
    main()
