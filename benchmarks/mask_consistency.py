"""Do two photos of one person get similar masks? (the paper's Fig. 1 claim)

    python benchmarks/mask_consistency.py [--identities 300] [--strength medium] [--recognizer sface]

Per eval identity, the first two photos (sorted by path); IoU of their aligned
masks, against the IoU of masks of consecutive different identities.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from _data import DATA
from anon_plugin import Anonymizer
from anon_plugin.inference.mask import iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=300)
    parser.add_argument("--strength", default="medium")
    parser.add_argument("--recognizer", default="sface")
    args = parser.parse_args()
    with open(DATA / "celeba" / "labels.csv", newline="") as f:
        by_id: dict[str, list[str]] = {}
        for row in csv.DictReader(f):
            if row["split"] == "eval":
                by_id.setdefault(row["identity"], []).append(row["path"])
    anonymizer = Anonymizer(strength=args.strength, recognizer=args.recognizer)
    pairs = []
    for identity in sorted(by_id, key=int)[: args.identities]:
        masks = []
        for path in sorted(by_id[identity])[:2]:
            faces = anonymizer.anonymize(DATA / "celeba" / path).faces
            masks.append(faces[0].hole_mask if faces and faces[0].hole_mask is not None else None)
        if len(masks) == 2 and all(m is not None for m in masks):
            pairs.append(masks)
    n = len(pairs)
    same = np.array([iou(a, b) for a, b in pairs])
    different = np.array([iou(pairs[k][0], pairs[(k + 1) % n][1]) for k in range(n)])
    print(f"{n} identities, {args.strength} masks, recognizer {args.recognizer}")
    print(f"mask IoU same person {same.mean():.3f}, different people {different.mean():.3f}; "
          f"same > different for {np.mean(same > different):.0%} of identities")


if __name__ == "__main__":
    main()
