"""Every candidate photo under the library roots, found by walking the folders.

Events are not enough: photos added while the daemon was down send none, and
inotify drops events when its queue overflows or its watch limit is reached.
So the service walks the roots at start and again every ``rescan_interval``
and compares what it finds with the store. The walk never follows symbolic
links (a link could lead out of the library, or in circles) and never looks
into an ignored folder. A folder it cannot read is reported and skipped; the
walk goes on. The files it passes over that are not clutter (videos, documents)
are told to whoever asks for them (``not_photos``), so that an album can list
what it does not publish.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..formats import not_a_photo
from .ignore import PathFilter

log = logging.getLogger("anon_plugin.library")
BUILT_IN = PathFilter()  # the built-in rules alone


@dataclass(frozen=True)
class PhotoFile:
    """A candidate photo: ``path`` is POSIX, relative to the album folder ``root / album``."""

    root: Path
    album: str
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class WalkProblem:
    """Something the walk could not look at, or would not: ``album`` and ``path`` are "" when it was the root
    or the album. ``unknown``: it could not be read, so whatever was under ``path`` may still be there (it
    must never be taken for deleted); a symbolic link is known, and skipped."""

    root: Path
    album: str
    path: str
    reason: str
    unknown: bool = True


@dataclass(frozen=True)
class NotAPhoto:
    """A file of the album that is not clutter and not a photo (a video, a document): ``reason`` says which."""

    root: Path
    album: str
    path: str
    reason: str


def _entries(folder: Path, where: tuple[Path, str, str], problems: list[WalkProblem] | None) -> list[os.DirEntry]:
    """The folder's entries sorted by name; [] (and a problem) when it cannot be read."""
    try:
        with os.scandir(folder) as listing:
            return sorted(listing, key=lambda entry: entry.name)
    except FileNotFoundError:
        return []  # removed while we walked: nothing to report
    except OSError as exc:
        _report(WalkProblem(*where, f"cannot read folder: {exc.strerror or exc}"), problems)
        return []


def _report(skipped: WalkProblem, problems: list[WalkProblem] | None) -> None:
    log.warning("skipped %s: %s", skipped.root / skipped.album / skipped.path, skipped.reason)
    if problems is not None:
        problems.append(skipped)


def albums(roots: Iterable[Path], path_filter: PathFilter = BUILT_IN, *,
           problems: list[WalkProblem] | None = None) -> list[tuple[Path, str]]:
    """The albums: ``(root, folder name)`` of each first-level folder that is not ignored."""
    found = []
    for root in roots:
        if not root.is_dir():
            # Reported, never silent: an unmounted share must not read as "every photo was deleted".
            _report(WalkProblem(root, "", "", "library root is missing or not a folder"), problems)
            continue
        for entry in _entries(root, (root, "", ""), problems):
            if entry.is_dir(follow_symlinks=False) and path_filter.folder_reason(PurePosixPath(entry.name)) is None:
                found.append((root, entry.name))
    return found


def scan_album(root: Path, album: str, path_filter: PathFilter, *, under: str = "",
               problems: list[WalkProblem] | None = None,
               not_photos: list[NotAPhoto] | None = None) -> Iterator[PhotoFile]:
    """The candidate photos in one album, or in its subfolder ``under`` (POSIX, relative to the album).

    Depth first: a folder's photos in name order, then its subfolders in name order. The files that are
    neither photos nor ignored are appended to ``not_photos`` when it is a list.
    """
    stack = [PurePosixPath(under)]
    while stack:
        relative = stack.pop()
        subfolders = []
        for entry in _entries(root / album / relative, (root, album, _posix(relative)), problems):
            inner = relative / entry.name
            in_root = PurePosixPath(album) / inner
            if entry.is_dir(follow_symlinks=False):
                if path_filter.folder_reason(in_root) is None:
                    subfolders.append(inner)
            elif path_filter.ignored(in_root) is None:
                why = not_a_photo(entry.name)
                if why is None:
                    yield from _found(entry, root, album, inner, problems)
                elif not_photos is not None:
                    not_photos.append(NotAPhoto(root, album, str(inner), why))
        stack.extend(reversed(subfolders))


def _posix(relative: PurePosixPath) -> str:
    return "" if relative == PurePosixPath() else str(relative)


def _found(entry: os.DirEntry, root: Path, album: str, inner: PurePosixPath,
           problems: list[WalkProblem] | None) -> Iterator[PhotoFile]:
    if entry.is_symlink():
        _report(WalkProblem(root, album, str(inner), "symbolic link, not followed", unknown=False), problems)
        return
    try:
        st = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError as exc:
        _report(WalkProblem(root, album, str(inner), f"cannot stat: {exc.strerror or exc}"), problems)
        return
    if entry.is_file(follow_symlinks=False):
        yield PhotoFile(root, album, str(inner), st.st_size, st.st_mtime_ns)


def scan(roots: Iterable[Path], path_filter: PathFilter, *,
         problems: list[WalkProblem] | None = None) -> Iterator[PhotoFile]:
    """Every candidate photo under ``roots``: root by root, album by album (name order), as ``scan_album``.

    Folders that cannot be read are logged and, when ``problems`` is a list,
    appended to it as ``WalkProblem``; the walk goes on without them.
    """
    for root, album in albums(roots, path_filter, problems=problems):
        yield from scan_album(root, album, path_filter, problems=problems)
