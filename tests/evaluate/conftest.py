"""Tiny labeled face sets for the evaluation tests: labels.csv in a temporary folder whose
``images`` is a symlink to ../shared/data/celeba/images (no photo is copied)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

EVAL_IDENTITIES = 10
EVAL_IMAGES = 3  # gallery + 2 probes
TRAIN_IDENTITIES = 12


def first_rows(rows: list[dict[str, str]], split: str, identities: int, images: int) -> list[dict[str, str]]:
    """The first ``images`` photos (by path) of the first ``identities`` identities (numerically) of a split."""
    by_id: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row["split"] == split:
            by_id.setdefault(row["identity"], []).append(row)
    chosen = sorted((i for i, r in by_id.items() if len(r) >= 2), key=int)[:identities]
    return [r for i in chosen for r in sorted(by_id[i], key=lambda r: r["path"])[:images]]


@pytest.fixture(scope="session")
def celeba_rows(data_root: Path) -> list[dict[str, str]]:
    with open(data_root / "celeba" / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def make_subset(tmp_path_factory, data_root: Path) -> Callable[[list[dict[str, str]], list[str]], Path]:
    """``make_subset(rows, columns)``: a data dir with these labels.csv rows and columns."""

    def make(rows: list[dict[str, str]], columns: list[str]) -> Path:
        folder = tmp_path_factory.mktemp("subset")
        (folder / "images").symlink_to(data_root / "celeba" / "images", target_is_directory=True)
        with open(folder / "labels.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return folder

    return make


@pytest.fixture(scope="session")
def tiny_celeba(make_subset, celeba_rows) -> Path:
    """10 eval identities x 3 photos and 12 train identities x 2 photos, with every CelebA column."""
    rows = first_rows(celeba_rows, "eval", EVAL_IDENTITIES, EVAL_IMAGES)
    rows += first_rows(celeba_rows, "train", TRAIN_IDENTITIES, 2)
    return make_subset(rows, list(celeba_rows[0]))


@pytest.fixture(scope="session")
def celeba_subset(make_subset, celeba_rows) -> Callable[..., Path]:
    """``celeba_subset(identities, images, columns)``: the first eval identities' first photos only."""

    def make(identities: int, images: int, columns: list[str]) -> Path:
        return make_subset(first_rows(celeba_rows, "eval", identities, images), columns)

    return make
