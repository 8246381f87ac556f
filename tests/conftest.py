"""Shared fixtures. Real faces are read from ../shared/data at run time, never copied here; a throwaway PostgreSQL
cluster when one is installed."""

from __future__ import annotations

import csv
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import REDIS, RedisServer

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


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


def _as_owner(owner: str | None, *argv: str) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    return ["runuser", "-u", owner, "--", *argv] if owner else list(argv)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL cluster of its own (unix socket only, no TCP), stopped and deleted afterwards.

    Its folder is made with tempfile, not under tmp_path: pytest's base folder
    is private to the user running the tests, and under root that user is not
    the one PostgreSQL runs as.
    """
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("postgresql is not installed")
    owner = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing")
        owner = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="anon-pg-"))
    data = folder / "data"
    try:
        if owner:
            shutil.chown(folder, owner, owner)
        subprocess.run(_as_owner(owner, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                 "--no-sync"), check=True, capture_output=True, timeout=60)
        subprocess.run(_as_owner(owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
                                 "-o", f"-k {folder} -c listen_addresses='' -c fsync=off", "start"),
                       check=True, capture_output=True, timeout=60)
        try:
            yield f"postgresql+psycopg://postgres@/postgres?host={folder}"
        finally:
            subprocess.run(_as_owner(owner, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
                           capture_output=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        log = folder / "log"
        detail = log.read_text()[-2000:] if log.is_file() else exc.stderr.decode(errors="replace")[-2000:]
        pytest.fail(f"could not start a throwaway PostgreSQL ({' '.join(exc.cmd[:4])}): {detail}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server for this test only (tests/redis_server.py), with a password; append-only when
    parametrized indirectly with True. Missing, it skips the test, except in CI (.ci/run installs it)."""
    if not REDIS.is_file():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"{REDIS} is not installed (Debian's redis-server)")
    server = RedisServer(tmp_path / "redis", append_only=bool(getattr(request, "param", False)))
    server.start()
    try:
        yield server
    finally:
        server.stop()
