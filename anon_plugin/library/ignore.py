"""What the library walk looks at: photos by extension, minus system and sync clutter.

Photo servers share folders with NAS indexers, sync tools and desktops that
leave their own files beside the photos (macOS ``._*`` shadow files and
``.DS_Store``, Synology ``@eaDir`` thumbnails, Syncthing's ``.stfolder``).
Publishing one of those would at best waste a job and at worst publish a
thumbnail of an original. The built-in rules follow paperless-ngx's consumer;
the admin's patterns (``[watch] ignore``) add to them, never replace them.

Paths are given relative to the library root, album first
(``Family/2024/beach.jpg``), so a pattern can name an album as well as a file.

Two kinds of file are not candidate photos. What is ``ignored`` (the clutter
above, hidden files, the admin's patterns) is passed over without a word.
The rest is the album's content all the same, a video or a document, and is
listed as not published with its reason (``formats.not_a_photo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from ..formats import not_a_photo

IGNORED_FILES = (".DS_Store", "._*", "Thumbs.db", "desktop.ini")
IGNORED_FOLDERS = ("@eaDir", ".stfolder", ".stversions", "#recycle", ".Trashes", "__MACOSX")


def _matches(name: str, patterns: tuple[str, ...]) -> str | None:
    """The first of ``patterns`` that ``name`` matches, ignoring case; None if none does."""
    lowered = name.lower()
    return next((p for p in patterns if fnmatchcase(lowered, p.lower())), None)


def _folder_reason(name: str) -> str | None:
    if _matches(name, IGNORED_FOLDERS):
        return f"ignored folder {name}"
    if name.startswith("."):
        return f"hidden folder {name}"
    return None


def _file_reason(name: str) -> str | None:
    if _matches(name, IGNORED_FILES):
        return f"ignored file {name}"
    if name.startswith("."):
        return "hidden file"
    return None


def _parts(relative: PurePosixPath) -> tuple[str, ...]:
    if relative.is_absolute() or not relative.parts or ".." in relative.parts:
        raise ValueError(f"expected a path relative to a library root, got {str(relative)!r}")
    return relative.parts


@dataclass(frozen=True)
class PathFilter:
    """The ignore rules: the built-in ones plus ``extra`` glob patterns.

    A pattern is matched, ignoring case, against every component of the path
    and against the whole path (``*`` crosses ``/``): ``*.tmp`` ignores a file
    anywhere, ``raw`` a folder anywhere, ``Family/private/*`` one subfolder.
    """

    extra: tuple[str, ...] = ()

    def _pattern_reason(self, relative: PurePosixPath, parts: tuple[str, ...]) -> str | None:
        for candidate in (*parts, str(relative)):
            pattern = _matches(candidate, self.extra)
            if pattern is not None:
                return f"matches pattern {pattern!r}"
        return None

    def folder_reason(self, relative: PurePosixPath) -> str | None:
        """Why the folder ``relative`` (and all it holds) is skipped; None when it is looked into."""
        parts = _parts(relative)
        for name in parts:
            reason = _folder_reason(name)
            if reason is not None:
                return reason
        return self._pattern_reason(relative, parts)

    def ignored(self, relative: PurePosixPath) -> str | None:
        """Why the file ``relative`` is passed over without a word (system and sync clutter, hidden files and
        folders, the admin's patterns); None when it is the album's content, a photo or not."""
        parts = _parts(relative)
        for name in parts[:-1]:
            reason = _folder_reason(name)
            if reason is not None:
                return reason
        return _file_reason(parts[-1]) or self._pattern_reason(relative, parts)

    def reason(self, relative: PurePosixPath) -> str | None:
        """Why the file ``relative`` is not a candidate photo (ignored, a video, not a photo); None when it is one."""
        return self.ignored(relative) or not_a_photo(relative.name)

    def wanted(self, relative: PurePosixPath) -> bool:
        """True for a candidate photo."""
        return self.reason(relative) is None
