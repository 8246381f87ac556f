"""The public root: where public copies go, written atomically, deleted and moved with their originals.

``public_root/<album>/<the original's relative path>``. A copy is written (``atomic.write_atomic``)
to a temporary file in its own folder, fsynced and renamed over the target,
so a crash leaves the old copy or the new one, never half a file; temporary
files a crash left behind are removed at start (``clean_temp_files``).
Nothing here touches a library root. A copy of an Immich album goes to the
public Immich user instead (``connectors/immich/target.py``); its output's
``public_path`` is ``immich:<asset id>``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from .errors import OutputError
from .atomic import TEMP_PATTERN, write_atomic


IMMICH = "immich:"  # an output's public_path on the public Immich user: immich:<asset id>


def immich_asset(public_path: str) -> str | None:
    """The asset id of a copy on the public Immich user (``immich:<id>``); None for a file of the public root."""
    return public_path.removeprefix(IMMICH) if public_path.startswith(IMMICH) else None


def public_path(public_root: Path, album: str, relative: str, suffix: str | None = None) -> Path:
    """Where the public copy of ``album/relative`` goes; ``suffix`` replaces the name's (e.g. ".jpg").

    Refuses any path that would leave ``public_root/album`` (``..``, absolute parts).
    """
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or album in ("", ".", "..") or "/" in album:
        raise OutputError(f"refusing the public path of {album}/{relative}: not inside the album")
    if suffix is not None:
        rel = rel.with_suffix(suffix)
    return public_root / album / Path(*rel.parts)


def publish(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (replacing an older copy); returns its sha256."""
    write_atomic(path, data, overwrite=True)
    return hashlib.sha256(data).hexdigest()


def _prune(folder: Path, stop: Path) -> None:
    """Remove empty folders from ``folder`` up to, not including, ``stop``."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def remove(path: Path, public_root: Path) -> bool:
    """Delete a public copy and the folders it leaves empty; False when it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OutputError(f"cannot remove {path}: {exc.strerror or exc}") from None
    _prune(path.parent, public_root)
    return True


def move(old: Path, new: Path, public_root: Path) -> bool:
    """Move a public copy along with its original; False when there was nothing to move."""
    if not old.exists():
        return False
    try:
        new.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, new)
    except OSError as exc:
        raise OutputError(f"cannot move {old} to {new}: {exc.strerror or exc}") from None
    _prune(old.parent, public_root)
    return True


def clean_temp_files(public_root: Path) -> list[Path]:
    """Remove the temporary files an interrupted write left under ``public_root``; returns them."""
    removed = []
    for path in public_root.rglob(TEMP_PATTERN):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
