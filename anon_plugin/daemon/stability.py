"""When a file is finished: no event for a while, and the same size and mtime as at the last event.

A phone upload, an SMB copy or a sync tool writes a photo in many pieces, and
watchdog reports each piece. Publishing between two pieces would anonymize a
truncated image (or fail on it). Events alone are not enough either: on
network mounts events come late or never, so the file itself must look the
same at the end of a quiet period as at its start (paperless-ngx's consumer
does the same with two looks).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("anon_plugin.daemon")

Signature = tuple[int, int]  # (size, mtime_ns)


@dataclass
class _Entry:
    first_event: float
    quiet_since: float  # the clock at the last event, or at the last look that saw a change
    seen: Signature | None  # the file at that moment
    events: int = 0  # bumped by every touch, so a look can tell it was overtaken


class StabilityTracker:
    """Paths seen changing, and which of them have settled.

    ``touch`` whenever an event names a path (it records the file's
    ``(size, mtime_ns)``); ``ready`` hands back, once, each path that had no
    event for ``delay`` seconds and whose ``(size, mtime_ns)`` is still what was
    recorded then. A look that finds it changed (a write that sent no event)
    records it and re-arms the clock, so a file is ready one quiet period after
    it last changed.
    Anything that is not (or no longer) a regular file is dropped: symbolic
    links are never followed, vanished paths are forgotten without a word.

    Thread-safe; it owns no thread: the caller decides how often to look.
    """

    def __init__(self, delay: float, clock: Callable[[], float] = time.monotonic) -> None:
        if delay <= 0:
            raise ValueError(f"delay must be > 0 seconds, got {delay}")
        self.delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Path, _Entry] = {}

    def touch(self, path: Path) -> None:
        """An event named ``path``: its quiet period starts again, from the file as it is now."""
        signature = _regular_file_signature(path)  # outside the lock, as in ``ready``
        now = self._clock()
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                self._entries[path] = _Entry(now, now, signature)
            else:
                entry.quiet_since, entry.seen = now, signature
                entry.events += 1

    def forget(self, path: Path) -> bool:
        """Stop tracking ``path``; True when it was still waiting (never handed out by ``ready``)."""
        with self._lock:
            return self._entries.pop(path, None) is not None

    def is_pending(self, path: Path) -> bool:
        with self._lock:
            return path in self._entries

    def pending(self) -> int:
        """How many paths are waiting to settle."""
        with self._lock:
            return len(self._entries)

    def ready(self) -> list[Path]:
        """The paths that settled since the last call, each handed out once, first seen first."""
        now = self._clock()
        with self._lock:
            due = [(path, entry.events) for path, entry in self._entries.items()
                   if now - entry.quiet_since >= self.delay]
        settled = []
        for path, events in due:
            signature = _regular_file_signature(path)  # outside the lock: a stat on a slow mount may take long
            with self._lock:
                entry = self._entries.get(path)
                if entry is None or entry.events != events:
                    continue  # forgotten or touched meanwhile
                if signature is None:
                    del self._entries[path]
                elif signature == entry.seen:  # unchanged for a whole quiet period
                    del self._entries[path]
                    settled.append((entry.first_event, path))
                else:
                    entry.seen = signature
                    entry.quiet_since = now
        return [path for _, path in sorted(settled)]


def _regular_file_signature(path: Path) -> Signature | None:
    """``(size, mtime_ns)`` of a regular file (links not followed); None when there is none to publish."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        log.warning("cannot stat %s (%s): not watched until the next rescan", path, exc.strerror)
        return None
    if not stat.S_ISREG(st.st_mode):
        log.debug("%s is not a regular file: dropped", path)
        return None
    return st.st_size, st.st_mtime_ns
