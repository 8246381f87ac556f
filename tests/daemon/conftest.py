"""Fixtures for the daemon: real folders in tmp_path, real watchdog observers, a sink that records.

Tests wait for changes with a deadline (``Recorder.wait_for``); a sleep is
only ever part of a scenario (a slow writer), never what an assertion rests on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from anon_plugin.library.ignore import PathFilter
from anon_plugin.daemon.watcher import Change, Watcher

DELAY = 0.3  # stability delay: a photo is ready about two delays after its last event
TIMEOUT = 10.0  # generous: a loaded 2-core CI machine is slow, a passing test never waits this long


@dataclass(frozen=True)
class Delivered:
    """A change as the sink saw it: when, on which thread, and the file's size at that moment (ready only)."""

    at: float
    thread: str
    change: Change
    size: int | None


class Recorder:
    """A sink that keeps every change it is given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delivered: list[Delivered] = []

    def __call__(self, change: Change) -> None:
        size = None
        if change.kind == "ready":
            try:
                size = (change.root / change.album / change.path).stat().st_size
            except OSError:
                size = -1
        with self._lock:
            self._delivered.append(Delivered(time.monotonic(), threading.current_thread().name, change, size))

    @property
    def delivered(self) -> list[Delivered]:
        with self._lock:
            return list(self._delivered)

    @property
    def changes(self) -> list[Change]:
        return [d.change for d in self.delivered]

    def wait_for(self, kind: str, path: str, album: str = "Family", timeout: float = TIMEOUT) -> Delivered:
        """The first delivered change of ``kind`` for ``album/path``; fails the test after ``timeout``."""
        _wait_until(lambda: self.find(kind, path, album), f"a {kind!r} change for {album}/{path}", timeout,
                   lambda: f"got {self.changes}")
        return self.find(kind, path, album)[0]

    def find(self, kind: str, path: str, album: str = "Family") -> list[Delivered]:
        return [d for d in self.delivered if (d.change.kind, d.change.album, d.change.path) == (kind, album, path)]

    def settle(self, library: Path, name: str = "zz-sentinel.jpg") -> list[Change]:
        """Write a sentinel photo into Family, wait for its ``ready``, return every other change so far.

        Events are applied in order and a photo needs two quiet periods, so a
        change caused by anything written before the sentinel has arrived by then.
        """
        _write_photo(library / "Family" / name)
        self.wait_for("ready", name)
        return [c for c in self.changes if c.path != name]


def _wait_until(condition: Callable[[], object], what: str, timeout: float = TIMEOUT,
               detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; {detail()}")
        time.sleep(0.02)


def _write_photo(path: Path, size: int = 2000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8" + bytes(size - 2))
    return path


# Test modules reach the helpers through fixtures: every conftest.py is the module "conftest" in turn.
@pytest.fixture
def write_photo() -> Callable[..., Path]:
    """``write_photo(path, size=2000)``: a small JPEG-looking file, parent folders made."""
    return _write_photo


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """``wait_until(condition, what, timeout=TIMEOUT)``: poll until true, fail the test at the deadline."""
    return _wait_until


StartWatcher = Callable[..., tuple[Watcher, Recorder]]


@pytest.fixture
def start_watcher(library: Path) -> Iterator[StartWatcher]:
    """Start a real Watcher on ``library`` (by default) with a recording sink; stopped after the test."""
    started: list[Watcher] = []

    def start(*, delay: float = DELAY, mode: str = "native", ignore: tuple[str, ...] = (),
              roots: list[Path] | None = None, sink: Callable[[Change], None] | None = None,
              check_interval: float = 0.2) -> tuple[Watcher, Recorder]:
        recorder = Recorder()
        watcher = Watcher(roots or [library], PathFilter(ignore), stability_delay=delay, mode=mode,
                          sink=sink or recorder, poll_interval=0.1, check_interval=check_interval)
        watcher.start()
        started.append(watcher)
        return watcher, recorder

    yield start
    for watcher in started:
        assert watcher.stop(), "a watcher thread outlived stop()"
