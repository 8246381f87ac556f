"""Atomic file writes: a path holds its old file or its new one, never half of one.

Used for public copies (``publish``) and for the CLI's outputs and reports. A
file is written to a temporary file in its own folder (``TEMP_PATTERN``),
fsynced and renamed over the target; the folder is fsynced after the rename.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import OutputError, OutputExistsError

TEMP_PATTERN = ".*.part"  # the temporary files of write_atomic (publish.clean_temp_files removes leftovers)


def _umask() -> int:
    """The process's umask. It can only be read by setting it, which would race other threads
    creating files: read once, at import."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_NEW_FILE_MODE = 0o666 & ~_umask()  # the mode open() gives a new file


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the folder's entry is what a crash could lose)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write ``data`` to ``path``, creating its folder; after a crash the path holds the old file or
    the new one. Raises OutputExistsError when ``path`` exists and not ``overwrite``, OutputError
    when it cannot be written."""
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _NEW_FILE_MODE)  # mkstemp's 0600 would hide the photo from other users
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        _fsync_folder(path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
