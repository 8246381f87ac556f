"""The daemon: the watcher, the rescans, the Immich poller (with an [immich] section) and the workers wired
to one store; with the celery backend, the dispatcher instead of the workers (``jobs/dispatch.py``): the
``anon-plugin worker`` processes run the jobs, on this machine or others.

The watcher only produces work (``Change``s on its own thread); this module
turns each one into store updates and queued jobs, in a short transaction;
workers run the jobs. At start, temporary files an interrupted write left
in the public root are removed and a full scan catches what happened while
the daemon was down; a periodic rescan catches what the watcher missed.
``stop`` (SIGTERM, SIGINT) stops claiming, lets each worker finish the
batch in hand, and returns.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .. import albums, photos, publish
from ..config import Settings
from ..jobs import queue
from ..jobs.worker import Worker
from ..store import migrate, queries
from ..store.db import engine_for, session_scope
from ..store.tables import Album, Photo
from ..library.ignore import PathFilter
from ..library.walk import PhotoFile, WalkProblem, albums as album_folders, scan_album
from .watcher import Change, Watcher

if TYPE_CHECKING:
    from ..connectors.immich.watch import Poller
    from ..jobs.dispatch import Dispatcher

log = logging.getLogger("anon_plugin.daemon")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _found(root: Path, album: str, path: str) -> PhotoFile | None:
    """The file as it is now, None when it is gone or no longer a regular file."""
    try:
        st = os.stat(root / album / path, follow_symlinks=False)
    except OSError:
        return None
    import stat

    return PhotoFile(root, album, path, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


class Service:
    """One daemon: ``start()``, then ``stop()`` (or ``run()`` until a signal)."""

    def __init__(self, settings: Settings, engine: Engine | None = None):
        if settings.public_root is None:
            raise ValueError("the daemon needs public_root and library_roots in the settings")
        self.settings = settings
        self.public_root = settings.public_root
        self.filter = PathFilter(settings.watch.ignore)
        self.engine = engine or engine_for(settings.database_url)
        self.device = settings.resolved_device()
        self.stopping = threading.Event()
        self.wake = threading.Event()  # set when a job is queued: an idle worker claims it at once
        self.watcher = Watcher.from_settings(settings, sink=self.handle)
        self.dispatcher = self._dispatcher()  # None with the local backend
        lease = dt.timedelta(seconds=settings.queue.lease)
        self.workers = [] if self.dispatcher else [
            Worker(self.engine, self.public_root, f"{os.uname().nodename}:{os.getpid()}:{i}", self.device,
                   settings.inference.max_batch, immich=settings.immich, data_dir=settings.data_dir, lease=lease,
                   max_attempts=settings.queue.max_attempts)
            for i in range(settings.inference.workers)]
        self.immich = self._poller()  # None without an [immich] section
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # the watcher's changes and the rescans take turns

    def start(self) -> None:
        import torch

        migrate.require_head(self.settings.database_url)
        torch.set_num_threads(self.settings.inference.threads)
        # The default policy's models, in the start hook, not at the first photo (whose latency stays the
        # usual one); another policy's load when it first asks. The celery backend's workers load their own.
        if self.workers:
            log.info("models loaded on %s in %.1f s", self.device, self.workers[0].load_models())
        for path in publish.clean_temp_files(self.public_root):
            log.info("removed %s, left by an interrupted write", path)
        with session_scope(self.engine) as session:
            if reclaimed := queue.reclaim_dead(session, os.uname().nodename, _alive):
                log.info("%d job(s) of a daemon that died on this machine queued again", reclaimed)
        self.watcher.start()  # first, so nothing that happens during the scan is missed
        self.rescan()
        self._threads = [threading.Thread(target=w.run, args=(self.stopping, self.wake), name=w.name)
                         for w in self.workers]
        if self.dispatcher is not None:  # joined by stop, as the workers
            self._threads.append(threading.Thread(target=self.dispatcher.run, args=(self.stopping, self.wake),
                                                  name="dispatch"))
        self._threads.append(threading.Thread(target=self._rescans, name="rescan", daemon=True))
        if self.immich is not None:  # joined by stop, as the workers
            self._threads.append(threading.Thread(target=self.immich.run, args=(self.stopping,), name="immich"))
        for thread in self._threads:
            thread.start()
        if self.dispatcher is not None:
            log.info("watching %s; sending jobs to the broker %s for the workers to publish to %s",
                     ", ".join(map(str, self.settings.library_roots)), self.dispatcher.url, self.public_root)
        else:
            log.info("watching %s; publishing to %s on %s with %d worker(s)",
                     ", ".join(map(str, self.settings.library_roots)), self.public_root, self.device,
                     len(self.workers))
        if self.immich is not None:
            log.info("polling the Immich albums of %s every %.0f s", self.immich.client.url, self.immich.interval)

    def _poller(self) -> Poller | None:
        """The Immich poller, its source client built once from the settings."""
        if self.settings.immich is None:
            return None
        from ..connectors.immich.watch import Poller  # httpx is imported only when Immich is set up

        return Poller.from_settings(self.settings.immich, self.engine, self.stopping, queued=self.wake.set)

    def _dispatcher(self) -> Dispatcher | None:
        """The celery backend's dispatcher (celery is imported only when it is set up)."""
        if self.settings.queue.backend != "celery":
            return None
        from ..jobs.dispatch import Dispatcher

        return Dispatcher(self.engine, self.settings.queue, self.settings.inference.max_batch)

    def stop(self, timeout: float = 300.0) -> None:
        """Stop claiming work; each worker finishes the batch in hand; the watcher and the Immich poller stop."""
        self.stopping.set()
        self.wake.set()
        self.watcher.stop()
        for thread in self._threads:
            if not thread.daemon:
                thread.join(timeout)
        log.info("stopped")

    def _rescans(self) -> None:
        while not self.stopping.wait(self.settings.watch.rescan_interval):
            try:
                self.rescan()
            except Exception:
                log.exception("rescan failed; trying again at the next one")

    def rescan(self) -> None:
        """Bring the store in line with the library: albums, new and changed photos, vanished ones.

        Each album's folder is walked with no transaction open (a walk of a large library, or one on
        a network share, takes longer than a writer may wait for the lock), then recorded in one
        short transaction. The watcher waits meanwhile, so no event falls between walk and record.
        """
        folders = album_folders(self.settings.library_roots, self.filter)
        with self._lock:
            with session_scope(self.engine) as session:
                for name in albums.sync(session, folders, self.settings.share_new_albums):
                    log.info("new album %s", name)
                present = [(a.id, Path(a.root), a.name)
                           for a in session.scalars(sa.select(Album).where(Album.removed_at.is_(None),
                                                                           Album.source == "folder"))]
            for album_id, root, name in present:
                problems: list[WalkProblem] = []
                found = list(scan_album(root, name, self.filter, problems=problems))
                with session_scope(self.engine) as session:
                    self._record_scan(session, session.get_one(Album, album_id), found, problems)
        self.wake.set()

    def _record_scan(self, session: Session, album: Album, found: list[PhotoFile], problems: list[WalkProblem]) -> None:
        for file in found:
            photos.seen(session, album, file)
        # What could not be read now (an unmounted share, a folder without permission) was not deleted.
        unknown = [PurePosixPath(p.path) for p in problems if p.unknown]
        if unknown:
            log.warning("album %s: %d path(s) could not be read; no photo under them counted as deleted",
                        album.name, len(unknown))
        paths = {photo.path for photo in found}
        for photo in session.scalars(sa.select(Photo).where(Photo.album_id == album.id, Photo.state != "removed")):
            path = PurePosixPath(photo.relative_path)
            if photo.relative_path not in paths and not any(u == path or u in path.parents for u in unknown):
                photos.deleted(session, album, photo.relative_path, self.public_root)

    def handle(self, change: Change) -> None:
        """A change from the watcher, on the watcher's thread: a short transaction, no inference."""
        try:
            self._handle(change)
        finally:
            self.wake.set()  # after the commit: an idle worker looks for the new job at once

    def _handle(self, change: Change) -> None:
        with self._lock, session_scope(self.engine) as session:
            if change.kind in ("album_added", "album_removed"):
                albums.sync(session, album_folders(self.settings.library_roots, self.filter),
                            self.settings.share_new_albums)
                return
            album = queries.album(session, str(change.root), change.album)
            if album is None:
                albums.sync(session, album_folders(self.settings.library_roots, self.filter),
                            self.settings.share_new_albums)
                album = queries.album(session, str(change.root), change.album)
                if album is None:
                    return
            if change.kind == "ready":
                found = _found(change.root, change.album, change.path)
                if found is not None and photos.seen(session, album, found):
                    log.info("%s/%s: queued", change.album, change.path)
            elif change.kind == "deleted":
                if not (change.root / change.album).is_dir():
                    # The whole album (or its share) is gone: an unmounted share looks the same as a
                    # deletion. The copies stay until the folder is back or the admin unshares it.
                    log.warning("%s: album folder not there; its public copies are kept", change.album)
                    return
                paths = queries.photo_paths_under(session, album.id, change.path) if change.folder else [change.path]
                for path in paths:
                    if photos.deleted(session, album, path, self.public_root):
                        log.info("%s/%s: original deleted, public copy removed", change.album, path)
            elif change.kind == "moved":
                assert change.new_path is not None, "a moved change has its new path (Change checks)"
                found = _found(change.root, change.album, change.new_path)
                if found is not None:
                    photos.moved(session, album, change.path, found, self.public_root)
                    log.info("%s/%s: moved to %s", change.album, change.path, change.new_path)
                elif photos.deleted(session, album, change.path, self.public_root):
                    # Moved on again (or away) before we looked: wherever it is now, a later event says so.
                    log.info("%s/%s: moved to %s and gone from there; public copy removed", change.album,
                             change.path, change.new_path)

    def run(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then stop cleanly."""
        import signal

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        self.start()
        try:
            while not self.stopping.wait(1.0):
                pass
        finally:
            self.stop()
