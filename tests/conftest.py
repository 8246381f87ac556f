"""Shared fixtures. Real faces are read from ../shared/data at run time, never copied here."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("ANON_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "celeba" / "labels.csv").is_file():
        pytest.fail(f"face data not found at {root} (set ANON_TEST_DATA)")
    return root


def read_labels(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def eval_pairs(data_root: Path) -> list[tuple[str, Path, Path]]:
    """A fixed subset: (identity, photo A, photo B) for the first 24 eval identities."""
    by_id: dict[str, list[Path]] = {}
    for row in read_labels(data_root / "celeba" / "labels.csv"):
        if row["split"] == "eval":
            by_id.setdefault(row["identity"], []).append(data_root / "celeba" / row["path"])
    ids = sorted((i for i, p in by_id.items() if len(p) >= 2), key=int)[:24]
    return [(i, *sorted(by_id[i])[:2]) for i in ids]


@pytest.fixture(scope="session")
def wild_photos(data_root: Path) -> list[Path]:
    return sorted((data_root / "wild" / "images").glob("*.jpg"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite database file in the test's own folder."""
    from anon_plugin.store.db import default_url

    return default_url(tmp_path)


@pytest.fixture
def engine(sqlite_url: str):
    """An engine on a real SQLite database migrated to head."""
    from anon_plugin.store import migrate
    from anon_plugin.store.db import engine_for

    migrate.upgrade(sqlite_url)
    engine = engine_for(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A library root with one album, Family."""
    root = tmp_path / "library"
    (root / "Family").mkdir(parents=True)
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside every library root, on the same filesystem (moves from it are renames)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder
