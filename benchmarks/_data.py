"""Where benchmarks find the shared face data (never copied into the repository)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

DATA = Path(os.environ.get("ANON_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def eval_photos(count: int) -> list[Path]:
    """The first ``count`` eval photos of CelebA, one per identity first, in a fixed order."""
    with open(DATA / "celeba" / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "eval"]
    by_id: dict[str, list[str]] = {}
    for r in rows:
        by_id.setdefault(r["identity"], []).append(r["path"])
    order = sorted(by_id, key=int)
    picked: list[str] = []
    for depth in range(max(len(v) for v in by_id.values())):
        picked += [sorted(by_id[i])[depth] for i in order if depth < len(by_id[i])]
        if len(picked) >= count:
            break
    return [DATA / "celeba" / p for p in picked[:count]]
