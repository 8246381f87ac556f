"""Time of the generator step per face on this CPU (batch 1, 128x128), and of the whole fill.

    python benchmarks/generator_speed.py [--runs 50]

"generator step" is the network's forward pass alone; "generate fill" adds
what the filler does around it (resizing, the SFace embedding used to pick a
code away from the face's own identity, upsampling).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from faceveil import Anonymizer, models
from faceveil.fill import generate

from _data import DATA


def _median_ms(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    model = models.load("generator")
    face = Anonymizer().anonymize(sorted((DATA / "wild" / "images").glob("*.jpg"))[0]).faces[0]
    size = model.config.size
    x, m = torch.zeros(1, 3, size, size), torch.zeros(1, 1, size, size)
    code = model.identity_bank[:1].float()

    def step():
        with torch.inference_mode():
            model(x, m, code)

    params = sum(p.numel() for p in model.parameters())
    print(f"generator: {params / 1e6:.2f} M parameters, {size}x{size}, torch threads {torch.get_num_threads()}")
    print(f"generator step: {_median_ms(step, args.runs):.1f} ms per face (median of {args.runs})")
    print(f"generate fill:  {_median_ms(lambda: generate(face.crop, face.hole_mask, 0), args.runs):.1f} ms per face")


if __name__ == "__main__":
    main()
