"""Filesystem events in, ``Change``s out: which photos are ready, gone or moved, which albums came and went.

The watcher only produces work (paperless-ngx's consumer): it never reads a
photo, never touches the store or the queue. Three threads take part:

- watchdog's emitters read the kernel (inotify) or compare snapshots (polling);
- watchdog's dispatcher calls our handler, which only classifies the event
  (ignored? which album?) and puts it on our queue: a slow step there would
  hold every later event back;
- our ``watcher`` thread applies the events in order, asks the stability
  tracker which files settled, calls ``sink`` with each ``Change``, and
  supervises the observer.

Folders moved or renamed inside the library arrive as one move per file:
watchdog walks the new folder itself (inotify: synthetic sub-events; polling:
the snapshot diff matches inodes), so the watcher does not scan it again.

What it cannot see (an inotify queue overflow, a watch that could not be
added, events while an observer was being replaced) the service's periodic
rescan finds; see docs/watching.md.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from ..library.ignore import PathFilter
from ..library.walk import scan_album
from .stability import StabilityTracker

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger("anon_plugin.daemon")

KINDS = ("ready", "deleted", "moved", "album_added", "album_removed")
MODES = ("native", "polling")
# Opened / closed-without-write events are left out: reading a photo to publish it must not look like a change.
_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent,
           DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
_MAX_BACKOFF = 60.0
_BATCH = 1000  # events applied between two looks at the tracker


@dataclass(frozen=True)
class Change:
    """What the service must act on. ``path`` is POSIX, relative to the album folder; "" for album events.

    ``moved`` carries ``new_path`` (same root and album). A ``deleted`` with
    ``folder=True`` names a folder that left the library at once (moved out):
    every photo at or under ``path`` is gone, and no per-photo ``deleted``
    follows. A ``deleted`` for a photo the service never heard of is harmless.
    """

    kind: str
    root: Path
    album: str
    path: str
    new_path: str | None = None
    folder: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}; known: {', '.join(KINDS)}")
        if (self.kind == "moved") != (self.new_path is not None):
            raise ValueError("new_path is given for moved changes, and only for them")


@dataclass(frozen=True)
class _Place:
    """A file or folder inside an album; ``path`` "" is the album folder itself."""

    root: Path
    album: str
    path: str

    @property
    def full(self) -> Path:
        return self.root / self.album / self.path if self.path else self.root / self.album

    def change(self, kind: str, new_path: str | None = None, folder: bool = False) -> Change:
        return Change(kind, self.root, self.album, self.path, new_path, folder)


@dataclass(frozen=True)
class _Locator:
    """Maps an absolute path from an event to its album, or to None (outside the roots, or ignored)."""

    roots: tuple[Path, ...]
    path_filter: PathFilter

    def place(self, path: str, *, folder: bool) -> _Place | None:
        for root in self.roots:
            prefix = os.path.join(root, "")
            if path.startswith(prefix):
                parts = path[len(prefix):].split(os.sep)
                break
        else:
            return None
        if "" in parts:
            return None
        relative = PurePosixPath(*parts)
        if folder:
            if self.path_filter.folder_reason(relative) is not None:
                return None
        elif len(parts) < 2 or self.path_filter.reason(relative) is not None:
            return None  # a loose file in a root is in no album
        return _Place(root, parts[0], "/".join(parts[1:]))


@dataclass(frozen=True)
class _Seen:
    """An event as the handler classified it, waiting for the watcher thread.

    kind: touch, deleted, moved (files); album_added, folder_deleted, folder_moved (folders).
    ``moved_in``: a folder inotify reported as moved in from an unwatched place; it has no watch yet.
    """

    kind: str
    src: _Place | None
    dst: _Place | None = None
    moved_in: bool = False


def _classify(event: FileSystemEvent, locator: _Locator) -> _Seen | None:
    """What an event means for us, or None when it means nothing. Runs on watchdog's dispatcher: keep it cheap."""
    src, dst = os.fsdecode(event.src_path), os.fsdecode(event.dest_path)
    kind = event.event_type
    if not event.is_directory:
        if kind == "moved":
            before, after = locator.place(src, folder=False), locator.place(dst, folder=False)
            return _Seen("moved", before, after) if before or after else None
        place = locator.place(src, folder=False)
        if place is None:
            return None
        return _Seen("deleted", place) if kind == "deleted" else _Seen("touch", place)
    if event.is_synthetic:
        return None  # a folder inside a moved or created one: its files come as their own events
    if kind == "moved":
        before, after = locator.place(src, folder=True), locator.place(dst, folder=True)
        return _Seen("folder_moved", before, after, moved_in=not src) if before or after else None
    place = locator.place(src, folder=True)
    if place is None:
        return None
    if kind == "deleted":
        return _Seen("folder_deleted", place)
    return _Seen("album_added", place) if not place.path else None


class _Handler(FileSystemEventHandler):
    """watchdog's side: classify, enqueue, nothing else. ``current`` is False once its observer was replaced."""

    def __init__(self, locator: _Locator, put: Callable[[_Seen], None], current: Callable[[], bool]) -> None:
        super().__init__()
        self._locator = locator
        self._put = put
        self._current = current

    def dispatch(self, event: FileSystemEvent) -> None:
        seen = _classify(event, self._locator)
        if seen is not None and self._current():
            self._put(seen)


def _native_observer() -> BaseObserver:
    """inotify with full move events on Linux: a move from outside then names no source, so we know it is unwatched."""
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    return Observer()


def _stop_quietly(observer: BaseObserver, timeout: float = 5.0) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout)
    except (OSError, RuntimeError) as exc:
        log.debug("stopping a file observer: %s", exc)


class Watcher:
    """Watches every library root recursively and reports ``Change``s to ``sink`` on its own thread.

    ``mode`` "native" uses inotify (FSEvents, ReadDirectoryChangesW elsewhere);
    "polling" compares snapshots every ``poll_interval`` seconds, for NFS, SMB
    and other mounts that send no events. When inotify runs out of watches the
    watcher switches to polling by itself and says so.

    ``sink`` is called on the ``watcher`` thread, never on watchdog's; an
    exception from it is logged and the next change is delivered as usual.
    Every ``check_interval`` seconds the thread checks that the observer and
    each of its emitters are alive and every root still a folder, and replaces
    the observer otherwise (``restarts`` counts it).
    """

    def __init__(self, roots: Sequence[Path], path_filter: PathFilter, *, stability_delay: float,
                 mode: str = "native", sink: Callable[[Change], None], poll_interval: float = 1.0,
                 check_interval: float = 2.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.roots = tuple(Path(os.path.abspath(root)) for root in roots)
        self.mode = mode
        self.restarts = 0
        self._locator = _Locator(self.roots, path_filter)
        self._path_filter = path_filter
        self._tracker = StabilityTracker(stability_delay)
        self._sink = sink
        self._poll_interval = poll_interval
        self._check_interval = check_interval
        self._tick = min(1.0, max(0.05, stability_delay / 10))
        self._queue: queue.SimpleQueue[_Seen | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None
        self._watched: tuple[Path, ...] = ()
        self._generation = 0
        self._moved_in: list[_Place] = []
        self._failures = 0
        self._retry_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, *, sink: Callable[[Change], None]) -> Watcher:
        watch = settings.watch
        return cls(settings.library_roots, PathFilter(watch.ignore), stability_delay=watch.stability_delay,
                   mode=watch.mode, sink=sink)

    @property
    def pending(self) -> int:
        """Files seen changing that have not settled yet."""
        return self._tracker.pending()

    def start(self) -> None:
        """Start watching. Events from the moment this returns are seen (an unwatchable root is retried later)."""
        if self._thread is not None:
            raise RuntimeError("a Watcher starts once")
        if not self._start_observer():
            self._back_off()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread and the observer; True when every thread ended within ``timeout`` (each)."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        observer = self._observer
        if observer is not None:
            _stop_quietly(observer, timeout)
        return not self.is_alive() and not (observer is not None and observer.is_alive())

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # The watcher thread.

    def _run(self) -> None:
        next_check = time.monotonic() + self._check_interval
        while not self._stopping.is_set():
            try:
                self._drain()
                for path in self._tracker.ready():
                    place = self._locator.place(str(path), folder=False)
                    if place is not None:
                        self._emit(place.change("ready"))
                if self._moved_in or time.monotonic() >= next_check:
                    next_check = time.monotonic() + self._check_interval
                    self._supervise()
            except Exception:
                log.exception("file watcher: unexpected error; carrying on")
                self._stopping.wait(self._tick)

    def _drain(self) -> None:
        """Apply the queued events, waiting up to one tick for the first."""
        try:
            seen = self._queue.get(timeout=self._tick)
        except queue.Empty:
            return
        for _ in range(_BATCH):
            if seen is not None:
                self._apply(seen)
            try:
                seen = self._queue.get_nowait()
            except queue.Empty:
                return

    def _emit(self, change: Change) -> None:
        log.debug("change: %s", change)
        try:
            self._sink(change)
        except Exception:
            log.exception("the change sink failed on %s; carrying on", change)

    def _apply(self, seen: _Seen) -> None:
        if seen.kind == "moved":
            self._file_moved(seen.src, seen.dst)
            return
        if seen.kind == "folder_moved":
            self._folder_moved(seen)
            return
        src = seen.src
        assert src is not None, "only a move has an end outside the albums (_classify)"
        if seen.kind == "touch":
            self._tracker.touch(src.full)
        elif seen.kind == "deleted":
            self._tracker.forget(src.full)
            self._emit(src.change("deleted"))
        elif seen.kind == "album_added":
            self._emit(src.change("album_added"))
        elif seen.kind == "folder_deleted":
            self._emit(src.change("album_removed") if not src.path else src.change("deleted", folder=True))

    def _file_moved(self, src: _Place | None, dst: _Place | None) -> None:
        """In from outside: a new file. Out: deleted. Within an album: moved, unless it never settled."""
        if src is None:
            assert dst is not None, "a move with neither end in an album is dropped (_classify)"
            self._tracker.touch(dst.full)
            return
        was_pending = self._tracker.forget(src.full)
        if dst is None:
            self._emit(src.change("deleted"))
        elif was_pending or (src.root, src.album) != (dst.root, dst.album):
            self._emit(src.change("deleted"))
            self._tracker.touch(dst.full)
        else:
            self._tracker.forget(dst.full)  # a rename over a file still being written replaces it
            self._emit(src.change("moved", new_path=dst.path))

    def _folder_moved(self, seen: _Seen) -> None:
        """Albums come and go with their folders; photos inside move one by one, except out of the library."""
        src, dst = seen.src, seen.dst
        if src is not None:
            if not src.path:
                self._emit(src.change("album_removed"))
            elif dst is None:
                self._emit(src.change("deleted", folder=True))
        if dst is not None:
            if not dst.path:
                self._emit(dst.change("album_added"))
            if seen.moved_in:
                self._moved_in.append(dst)

    # Supervision.

    def _new_observer(self) -> BaseObserver:
        if self.mode == "polling":
            return PollingObserver(timeout=self._poll_interval)
        return _native_observer()

    def _start_observer(self) -> bool:
        """Start a new observer on every root that is a folder now, then retire the old one.

        The new one starts first so no moment goes unwatched; the old one's
        handler goes silent as soon as the new one is current.
        """
        generation = self._generation + 1
        watched = tuple(root for root in self.roots if root.is_dir())
        for root in set(self.roots) - set(watched):
            log.warning("library root %s is missing or not a folder: watched again once it is back", root)
        observer = self._new_observer()
        handler = _Handler(self._locator, self._queue.put, lambda: self._generation == generation)
        try:
            for root in watched:
                observer.schedule(handler, str(root), recursive=True, event_filter=_EVENTS)
            observer.start()
        except OSError as exc:
            _stop_quietly(observer)
            if self.mode == "native" and exc.errno in (errno.ENOSPC, errno.EMFILE):
                log.warning("inotify cannot watch the library (%s): polling every %.1f s instead; raise "
                            "fs.inotify.max_user_watches / max_user_instances, or set [watch] mode = \"polling\"",
                            exc.strerror, self._poll_interval)
                self.mode = "polling"
                return self._start_observer()
            log.error("cannot watch the library roots (%s); trying again later", exc)
            return False
        retired, self._observer = self._observer, observer
        self._watched, self._generation = watched, generation
        if retired is not None:
            _stop_quietly(retired)
        return True

    def _unhealthy(self) -> str | None:
        """Why the observer must be replaced, or None."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return "file observer stopped"
        if not all(emitter.is_alive() for emitter in tuple(observer.emitters)):
            return "file observer stopped watching a library root"
        present = tuple(root for root in self.roots if root.is_dir())
        if present != self._watched:
            gone = [f"library root {root} is gone" for root in self._watched if root not in present]
            back = [f"library root {root} is back" for root in present if root not in self._watched]
            return "; ".join(gone + back)
        return None

    def _supervise(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        reason = self._unhealthy()
        if reason is None and not self._moved_in:
            return
        if reason is not None:
            log.warning("%s: starting a new file observer (the periodic rescan finds what was missed)", reason)
        else:
            log.info("folders moved into the library are not watched by inotify yet: starting a new observer")
        if not self._start_observer():
            self._back_off()
            return
        self._failures = 0
        if reason is not None:
            self.restarts += 1
        self._catch_up()

    def _back_off(self) -> None:
        self._failures += 1
        self._retry_at = time.monotonic() + min(_MAX_BACKOFF, self._check_interval * 2 ** self._failures)

    def _catch_up(self) -> None:
        """Photos written into moved-in folders before they had a watch: track them now."""
        folders, self._moved_in = self._moved_in, []
        for place in folders:
            for found in scan_album(place.root, place.album, self._path_filter, under=place.path):
                path = place.root / found.album / found.path
                if not self._tracker.is_pending(path):
                    self._tracker.touch(path)
