"""Fixtures for the store: real SQLite files in tmp_path, and a throwaway PostgreSQL cluster when one is installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest



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
