"""Mean mask area (share of the eyebrow-to-chin region) per threshold and preset.

    python benchmarks/mask_area.py [--photos 200] [--recognizer sface]
"""

from __future__ import annotations

import argparse

import numpy as np

from _data import eval_photos
from anon_plugin import Anonymizer
from anon_plugin.inference.mask import STRENGTHS, area_fraction, hole_mask

THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--recognizer", default="sface")
    args = parser.parse_args()
    anonymizer = Anonymizer(recognizer=args.recognizer)
    areas: dict[float, list[float]] = {t: [] for t in sorted(set(THRESHOLDS) | set(STRENGTHS.values()))}
    faces = 0
    for path in eval_photos(args.photos):
        result = anonymizer.anonymize(path)
        face = max((f for f in result.faces if f.attention is not None), key=lambda f: f.detection_score, default=None)
        if face is None:
            continue
        faces += 1
        for t in areas:
            areas[t].append(area_fraction(hole_mask(face.attention, face.region, t), face.region))
    print(f"{faces} faces from {args.photos} eval photos, recognizer {args.recognizer}")
    print("| threshold | mean area | median | preset |\n|---|---|---|---|")
    for t, values in areas.items():
        preset = ", ".join(name for name, v in STRENGTHS.items() if v == t)
        print(f"| {t:.2f} | {np.mean(values):.1%} | {np.median(values):.1%} | {preset} |")


if __name__ == "__main__":
    main()
