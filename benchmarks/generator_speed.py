"""Time of the generator step per face on this CPU (batch 1, 128x128), and of the whole fill.

    python benchmarks/generator_speed.py [--runs 50] [--faces 60]

"generator step" is the network's forward pass alone. "generate fill" is what
the filler does per face: resizing, the SFace embedding of the face, then per
candidate person one generator step, the Poisson blend (blend.seamless) and
one SFace check (fill.VERIFY_*), on
``--faces`` CelebA eval faces per strength; it reports how many candidates
the check needed on average.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _data import eval_photos
from anon_plugin import Anonymizer
from anon_plugin.inference import registry
from anon_plugin.inference.fill import generate
from anon_plugin.inference.mask import STRENGTHS, hole_mask


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
    parser.add_argument("--faces", type=int, default=60)
    args = parser.parse_args()
    model = registry.load("generator")
    size = model.config.size
    x, m = torch.zeros(1, 3, size, size), torch.zeros(1, 1, size, size)
    code = model.identity_bank[:1].float()

    def step():
        with torch.inference_mode():
            model(x, m, code)

    params = sum(p.numel() for p in model.parameters())
    print(f"generator: {params / 1e6:.2f} M parameters, {size}x{size}, torch threads {torch.get_num_threads()}")
    print(f"generator step: {_median_ms(step, args.runs):.1f} ms per face (median of {args.runs})")

    analyzer = Anonymizer()
    faces = [f for p in eval_photos(args.faces) for f in analyzer.analyze(p).faces[:1] if not f.covered]
    candidates = [0]
    model.register_forward_hook(lambda *_: candidates.__setitem__(0, candidates[0] + 1))
    generate(faces[0].crop, faces[0].region, 0)  # warm-up
    print(f"\ngenerate fill on {len(faces)} eval faces:\n| strength | mean ms | median ms | candidates per face |")
    print("|---|---|---|---|")
    for strength, threshold in STRENGTHS.items():
        holes = [hole_mask(f.attention, f.region, threshold) for f in faces]
        candidates[0], times = 0, []
        for face, hole in zip(faces, holes, strict=True):
            start = time.perf_counter()
            generate(face.crop, hole, 0)
            times.append(time.perf_counter() - start)
        print(f"| {strength} | {1000 * np.mean(times):.1f} | {1000 * np.median(times):.1f} "
              f"| {candidates[0] / len(faces):.2f} |")


if __name__ == "__main__":
    main()
