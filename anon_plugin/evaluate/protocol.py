"""Which photos are galleries and which are probes, read from a labeled face set.

DATA_DIR holds ``labels.csv`` with the columns ``path,identity``, optionally
``split`` and attribute columns (+1 / -1, e.g. CelebA's 40); paths are
relative to DATA_DIR. The protocol (docs/evaluation.md):

- rows of the chosen split only (every row when no split is chosen);
- identities sorted: numerically when every identity is an integer, else as strings;
- the first N identities with at least 2 images;
- per identity, images sorted by path: the first is the gallery image, the
  next up to K are the probes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AnonPluginError

REQUIRED = ("path", "identity")
NOT_ATTRIBUTES = ("path", "identity", "split")


class ProtocolError(AnonPluginError):
    """labels.csv is missing, malformed, or selects nothing."""


@dataclass(frozen=True)
class LabeledImage:
    path: str  # relative to the data dir, as written in labels.csv
    identity: str
    attributes: np.ndarray | None = None  # (A,) bool in ``Labels.attribute_names`` order, True = +1


@dataclass(frozen=True)
class Subject:
    identity: str
    gallery: LabeledImage
    probes: tuple[LabeledImage, ...]


@dataclass(frozen=True)
class Labels:
    rows: tuple[LabeledImage, ...]
    splits: tuple[str, ...] | None  # None: no split column
    attribute_names: tuple[str, ...]  # () when labels.csv has no attribute columns
    split_of: dict[str, str]  # path -> split ({} without a split column)


@dataclass(frozen=True)
class Protocol:
    data_dir: Path
    split: str | None
    probes_per_identity: int
    subjects: tuple[Subject, ...]
    attribute_names: tuple[str, ...]

    @property
    def probes(self) -> list[tuple[int, LabeledImage]]:
        """(subject index, probe) in protocol order."""
        return [(k, p) for k, s in enumerate(self.subjects) for p in s.probes]


def _attribute_value(text: str, path: str, column: str) -> bool:
    value = text.strip()
    if value in ("1", "+1"):
        return True
    if value in ("-1", "0"):
        return False
    raise ProtocolError(f"labels.csv: {path}: attribute {column} is {text!r}, expected +1 or -1")


def read_labels(data_dir: Path) -> Labels:
    """Parse ``data_dir/labels.csv``; raises ProtocolError with a one-line reason."""
    path = Path(data_dir) / "labels.csv"
    if not path.is_file():
        raise ProtocolError(f"{path} not found (DATA_DIR must hold labels.csv)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = tuple(reader.fieldnames or ())
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ProtocolError(f"{path}: missing column(s) {', '.join(missing)} (have {', '.join(header)})")
        attribute_names = tuple(c for c in header if c not in NOT_ATTRIBUTES)
        has_split = "split" in header
        rows, split_of = [], {}
        for row in reader:
            attributes = None
            if attribute_names:
                attributes = np.array([_attribute_value(row[c], row["path"], c) for c in attribute_names])
            rows.append(LabeledImage(row["path"], row["identity"].strip(), attributes))
            if has_split:
                split_of[row["path"]] = row["split"].strip()
    splits = tuple(sorted(set(split_of.values()))) if has_split else None
    return Labels(tuple(rows), splits, attribute_names, split_of)


def identity_order(identities: Iterable[str]) -> list[str]:
    """Sorted numerically when every identity is an integer, else as strings."""
    ids = list(identities)
    try:
        return sorted(ids, key=int)
    except ValueError:
        return sorted(ids)


def group(labels: Labels, split: str | None) -> dict[str, list[LabeledImage]]:
    """Images per identity (sorted by path) within ``split`` (every row when None)."""
    if split is not None:
        if labels.splits is None:
            raise ProtocolError(f"--split {split}: labels.csv has no split column")
        if split not in labels.splits:
            raise ProtocolError(f"--split {split}: no such split; labels.csv has {', '.join(labels.splits)}")
    by_identity: dict[str, list[LabeledImage]] = {}
    for image in labels.rows:
        if split is None or labels.split_of[image.path] == split:
            by_identity.setdefault(image.identity, []).append(image)
    return {i: sorted(images, key=lambda im: im.path) for i, images in by_identity.items()}


def subjects_of(by_identity: dict[str, list[LabeledImage]], identities: int | None, probes: int) -> tuple[Subject, ...]:
    """The first ``identities`` (all when None) identities with at least 2 images: gallery + up to ``probes``."""
    eligible = [i for i in identity_order(by_identity) if len(by_identity[i]) >= 2]
    if identities is not None:
        eligible = eligible[:identities]
    return tuple(Subject(i, by_identity[i][0], tuple(by_identity[i][1:1 + probes])) for i in eligible)


def select(data_dir: Path, split: str | None = None, identities: int | None = None, probes: int = 3) -> Protocol:
    """The evaluation protocol on ``data_dir``: gallery and probes of the selected identities."""
    if probes < 1:
        raise ProtocolError(f"--probes must be at least 1, got {probes}")
    if identities is not None and identities < 1:
        raise ProtocolError(f"--identities must be at least 1, got {identities}")
    labels = read_labels(data_dir)
    subjects = subjects_of(group(labels, split), identities, probes)
    if len(subjects) < 2:
        where = f"split {split!r}" if split else "labels.csv"
        raise ProtocolError(f"{where} has {len(subjects)} identities with at least 2 images; need 2 or more")
    return Protocol(Path(data_dir), split, probes, subjects, labels.attribute_names)
