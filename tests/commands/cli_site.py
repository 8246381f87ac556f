"""The site the command tests run anon-plugin on: library roots, a public root and a store in tmp_path.

Imported by the tests of this folder (``from cli_site import Site``); ``conftest.py`` holds the fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from click.testing import CliRunner, Result
from sqlalchemy.orm import Session

from anon_plugin.cli import main
from anon_plugin.jobs.worker import Worker
from anon_plugin.store.db import default_url, engine_for, session_scope

_T = TypeVar("_T")


class Site:
    """Library roots (``library`` unless given), a public root and a data folder in tmp_path, set through
    the environment; ``cli(...)`` runs anon-plugin on them and ``drain()`` publishes what is queued."""

    def __init__(self, tmp_path: Path, roots: list[Path] | None = None):
        self.library, self.public, self.data = tmp_path / "library", tmp_path / "public", tmp_path / "data"
        self.roots = roots or [self.library]
        self.env: dict[str, str | None] = {
            "ANON_CONFIG": None, "ANON_DATA_DIR": str(self.data),
            "ANON_LIBRARY_ROOTS": os.pathsep.join(map(str, self.roots)), "ANON_PUBLIC_ROOT": str(self.public)}
        self.url = default_url(self.data)

    def cli(self, *args: object, input: str | None = None) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], env=self.env, input=input, catch_exceptions=False)

    def ok(self, *args: object) -> str:
        """Run a command that must succeed; its stderr."""
        result = self.cli(*args)
        assert result.exit_code == 0, result.stderr
        return result.stderr

    def drain(self) -> None:
        engine = engine_for(self.url)
        try:
            worker = Worker(engine, self.public, "test", max_batch=8)
            while worker.run_once():
                pass
        finally:
            engine.dispose()

    def read(self, work: Callable[[Session], _T]) -> _T:
        """``work`` run on a read-only session of the site's store."""
        engine = engine_for(self.url)
        try:
            with session_scope(engine, read_only=True) as session:
                return work(session)
        finally:
            engine.dispose()
