"""The panel's defences that are not Flask extensions: the secret key, safe redirects after
sign-in, and the throttle on failed sign-ins."""

from __future__ import annotations

import math
import os
import secrets
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import SettingsError

SECRET_KEY_FILE = "secret_key"
_KEY_BYTES = 32


def secret_key(data_dir: Path) -> bytes:
    """The key that signs session cookies: ``data_dir/secret_key``, made on first start (mode 0600,
    never a default), then read. A key file others can read is refused: anyone holding the key
    can forge a signed-in session."""
    path = Path(data_dir) / SECRET_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_key(path)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot create the panel's secret key: {exc.strerror}") from None
    try:
        os.write(fd, secrets.token_hex(_KEY_BYTES).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the panel's secret key: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise SettingsError(f"{path}: the panel's secret key is not a regular file")
        if mode & 0o077:
            raise SettingsError(f"{path}: the panel's secret key is readable by others (mode "
                                f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}")
        key = f.read().strip()
    if len(key) < _KEY_BYTES:  # an empty or truncated file (a crash during the first start)
        raise SettingsError(f"{path}: the panel's secret key is too short; delete the file to make a new one "
                            "(everyone will have to sign in again)")
    return key


def safe_next(target: str | None, fallback: str) -> str:
    """``target`` when it is a path on this site, else ``fallback``: never another host
    (``https://elsewhere``, ``//elsewhere``, ``/\\elsewhere``), a scheme or a control character."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return fallback
    if any(ord(c) < 32 or c == "\\" for c in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    return target


class Throttle:
    """Failed sign-ins counted per user name and per address, in memory (a restart forgets them):
    after ``limit`` failures within ``window`` seconds, sign-ins for that name or from that
    address are refused until the oldest failure is older than the window. A success clears both."""

    MAX_KEYS = 10_000  # bounded memory under a flood of made-up names

    def __init__(self, limit: int = 5, window: float = 15 * 60, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _keys(name: str, address: str) -> tuple[str, str]:
        return f"user:{name.lower()}", f"address:{address}"

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times

    def wait(self, name: str, address: str) -> int:
        """Seconds until a sign-in for ``name`` from ``address`` is allowed again; 0: now."""
        now = self.clock()
        with self._lock:
            waits = [times[0] + self.window - now for key in self._keys(name, address)
                     if len(times := self._recent(key, now)) >= self.limit]
        return math.ceil(max(waits)) if waits else 0

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(name, address):
                times = self._recent(key, now)
                times.append(now)
                self._failures.pop(key, None)
                self._failures[key] = times  # at the end: the least recently failed go first
            while len(self._failures) > self.MAX_KEYS:
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            for key in self._keys(name, address):
                self._failures.pop(key, None)
