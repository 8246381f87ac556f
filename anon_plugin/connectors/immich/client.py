"""A small typed client for the Immich calls the connector makes, over httpx.

One ``ImmichClient`` per key: the source key only reads (albums, their
assets, originals), the public key only writes (uploads, the mirror album,
its shared link, deletes). The key travels in the ``x-api-key`` header and is
never logged nor put in an error message. Connection errors and 5xx answers
are retried with exponential backoff (``Retry``); then ``ImmichUnavailable``.
A 401 or 403 raises ``ImmichPermissionError`` naming the permission the call
needs (Immich's own names, as the spec's ``x-immich-permission`` gives them).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ...errors import ImmichError, ImmichKeyError, ImmichPermissionError, ImmichUnavailable

if TYPE_CHECKING:
    from ...config import ImmichSettings

log = logging.getLogger(__name__)

PAGE_SIZE = 250  # assets per search page: Immich's own default
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Retry:
    """How often and how patiently a call is tried again: ``attempts`` in all, waiting ``first_delay`` seconds
    and then ``factor`` times longer each time, never more than ``max_delay``."""

    attempts: int = 5
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0

    def delays(self) -> Iterator[float]:
        """The waits between attempts (``attempts - 1`` of them)."""
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            yield min(delay, self.max_delay)
            delay *= self.factor


@dataclass(frozen=True)
class Album:
    """An album as ``GET /api/albums`` lists it."""

    id: str
    name: str
    asset_count: int
    last_modified: str | None  # lastModifiedAssetTimestamp: changes when an asset is added or edited
    has_shared_link: bool
    updated_at: str = ""  # updatedAt: changes when the album changes, assets removed included


@dataclass(frozen=True)
class Asset:
    """An asset of an album: ``checksum`` is Immich's SHA-1 of the original, base64."""

    id: str
    checksum: str
    type: str  # IMAGE, VIDEO, AUDIO, OTHER

    @property
    def is_image(self) -> bool:
        return self.type == "IMAGE"


@dataclass(frozen=True)
class Upload:
    """What an upload gave: the asset's id, and whether Immich already held the same bytes (``duplicate``)."""

    id: str
    duplicate: bool


@dataclass(frozen=True)
class SharedLink:
    id: str
    key: str  # the secret part of the public URL: /share/<key>
    show_metadata: bool
    allow_download: bool


def sha1_base64(path: Path) -> str:
    """The file's SHA-1 as Immich writes checksums (base64, 28 characters)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")


def neutral_name(checksum: str, suffix: str) -> str:
    """A file name that says nothing of the photo (no date, no original name): its checksum, URL-safe."""
    stem = base64.urlsafe_b64decode(checksum).hex()[:20]
    return f"{stem}{suffix.lower()}"


def connect(settings: ImmichSettings, retry: Retry = Retry(),
            sleep: Any = time.sleep) -> tuple[ImmichClient, ImmichClient]:
    """The source client and the public client the ``[immich]`` settings describe (their key files read now);
    ``sleep`` waits between retries."""
    assert settings.url and settings.source_key_file and settings.public_key_file, "checked when settings load"
    return (ImmichClient(settings.url, read_key(settings.source_key_file), name="source", retry=retry, sleep=sleep),
            ImmichClient(settings.url, read_key(settings.public_key_file), name="public", retry=retry, sleep=sleep))


def read_key(path: Path) -> str:
    """The API key in ``path`` (surrounding white space dropped). Refuses a file that group or others may read,
    a missing or empty one, with ``ImmichKeyError``; the message never holds the key."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ImmichKeyError(f"{path}: mode {stat.S_IMODE(mode):04o}, readable by others than its owner; "
                                 f"run chmod 600 {path}")
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ImmichKeyError(f"{path}: key file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImmichKeyError(f"{path}: cannot read the key file: {getattr(exc, 'strerror', None) or exc}") from None
    if not key or any(c.isspace() for c in key):
        raise ImmichKeyError(f"{path}: does not hold one API key")
    return key


class ImmichClient:
    """The calls on one Immich server with one key. ``url`` is the server's address (``/api`` is added);
    ``name`` says whose key it is in messages ("source", "public")."""

    def __init__(self, url: str, key: str, *, name: str = "Immich", retry: Retry = Retry(),
                 timeout: float = 60.0, sleep: Any = time.sleep):
        self.url = url.rstrip("/")
        self.name = name
        self._retry = retry
        self._sleep = sleep
        self._http = httpx.Client(base_url=f"{self.url}/api", timeout=timeout, follow_redirects=False,
                                  headers={"x-api-key": key, "accept": "application/json"})

    def __repr__(self) -> str:
        return f"ImmichClient({self.url!r}, name={self.name!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ImmichClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading (the source key) ----

    def albums(self) -> list[Album]:
        """Every album the key's user owns or is shared."""
        return [_album(a) for a in self._json("GET", "/albums", "album.read")]

    def album_assets(self, album_id: str) -> list[Asset]:
        """Every asset of an album, page after page (``POST /api/search/metadata`` with ``albumIds``)."""
        found: list[Asset] = []
        page: int | None = 1
        while page is not None:
            body = {"albumIds": [album_id], "page": page, "size": PAGE_SIZE}
            answer = self._json("POST", "/search/metadata", "asset.read", json=body)["assets"]
            found += [Asset(a["id"], a["checksum"], a["type"]) for a in answer["items"]]
            page = int(answer["nextPage"]) if answer.get("nextPage") else None
        return found

    def download(self, asset_id: str, dest: Path) -> None:
        """The original of an asset, streamed into ``dest`` (written whole or not at all)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        for delay in (*self._retry.delays(), None):
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f, self._http.stream("GET", f"/assets/{asset_id}/original") as answer:
                    if not self._retry_worthy(answer, delay):
                        self._check(answer, "GET", f"/assets/{asset_id}/original", "asset.download")
                        for chunk in answer.iter_bytes(_CHUNK):
                            f.write(chunk)
                        f.flush()
                        os.fsync(f.fileno())
                        os.replace(tmp, dest)
                        return
            except httpx.TransportError as exc:
                self._wait_or_give_up(delay, "GET", f"/assets/{asset_id}/original", exc)
            finally:
                Path(tmp).unlink(missing_ok=True)
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- writing (the public key) ----

    def upload(self, path: Path) -> Upload:
        """Upload a file under a neutral name, dated now (nothing of the original's name or date goes out).
        Immich tells by the checksum when it already holds the same bytes: then ``duplicate`` is true."""
        checksum = sha1_base64(path)
        name = neutral_name(checksum, path.suffix)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        fields = {"fileCreatedAt": now, "fileModifiedAt": now, "filename": name}
        data = path.read_bytes()
        answer = self._json("POST", "/assets", "asset.upload", headers={"x-immich-checksum": checksum},
                            data=fields, files={"assetData": (name, data, "application/octet-stream")})
        return Upload(answer["id"], answer["status"] == "duplicate")

    def create_album(self, name: str, description: str = "") -> str:
        """A new album of the key's user; its id."""
        body = {"albumName": name, "description": description}
        return str(self._json("POST", "/albums", "album.create", json=body)["id"])

    def add_to_album(self, album_id: str, asset_ids: Sequence[str]) -> None:
        """Put assets into an album; those already in it are fine."""
        if not asset_ids:
            return
        answer = self._json("PUT", f"/albums/{album_id}/assets", "albumAsset.create", json={"ids": list(asset_ids)})
        failed = [a for a in answer if not a["success"] and a.get("error") != "duplicate"]
        if failed:
            raise ImmichError(f"{self.name}: PUT /api/albums/{album_id}/assets: {len(failed)} assets refused "
                              f"({failed[0]['id']}: {failed[0].get('error', 'unknown')})")

    def create_link(self, album_id: str, allow_download: bool) -> SharedLink:
        """A shared link to an album that shows no metadata."""
        body = {"type": "ALBUM", "albumId": album_id, "showMetadata": False, "allowDownload": allow_download}
        return _link(self._json("POST", "/shared-links", "sharedLink.create", json=body))

    def update_link(self, link_id: str, allow_download: bool) -> SharedLink:
        """Set whether a link allows downloads; it is set to show no metadata again, whatever it was."""
        body = {"showMetadata": False, "allowDownload": allow_download}
        return _link(self._json("PATCH", f"/shared-links/{link_id}", "sharedLink.update", json=body))

    def delete_link(self, link_id: str) -> None:
        """Delete a shared link: its address shows nothing any more."""
        self._send("DELETE", f"/shared-links/{link_id}", "sharedLink.delete")

    def delete_assets(self, asset_ids: Sequence[str]) -> None:
        """Delete assets for good (not to the trash, where their owner would still see them)."""
        if asset_ids:
            self._send("DELETE", "/assets", "asset.delete", json={"ids": list(asset_ids), "force": True})

    # ---- the plumbing ----

    def _json(self, method: str, path: str, permission: str, **kwargs: Any) -> Any:
        answer = self._send(method, path, permission, **kwargs)
        try:
            return answer.json()
        except ValueError:
            raise ImmichError(f"{self.name}: {method} /api{path}: the answer is not JSON") from None

    def _send(self, method: str, path: str, permission: str, **kwargs: Any) -> httpx.Response:
        """One call, tried again on connection errors and 5xx; raises the typed errors."""
        for delay in (*self._retry.delays(), None):
            try:
                answer = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                self._wait_or_give_up(delay, method, path, exc)
                continue
            if not self._retry_worthy(answer, delay):
                self._check(answer, method, path, permission)
                return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_worthy(self, answer: httpx.Response, delay: float | None) -> bool:
        """A 5xx: wait and say so (True), or, after the last attempt, give up."""
        if answer.status_code < 500:
            return False
        path = answer.request.url.path
        if delay is None:
            raise ImmichUnavailable(f"{self.name}: {answer.request.method} {path}: {self.url} answered "
                                    f"{answer.status_code} through {self._retry.attempts} attempts")
        log.warning("%s: %s %s answered %s; again in %.1f s", self.name, answer.request.method, path,
                    answer.status_code, delay)
        self._sleep(delay)
        return True

    def _wait_or_give_up(self, delay: float | None, method: str, path: str, exc: httpx.TransportError) -> None:
        reason = type(exc).__name__
        if delay is None:
            raise ImmichUnavailable(f"{self.name}: {method} /api{path}: cannot reach {self.url} ({reason}) "
                                    f"through {self._retry.attempts} attempts") from None
        log.warning("%s: %s /api%s: cannot reach %s (%s); again in %.1f s", self.name, method, path, self.url,
                    reason, delay)
        self._sleep(delay)

    def _check(self, answer: httpx.Response, method: str, path: str, permission: str) -> None:
        status = answer.status_code
        if status < 400:
            return
        call = f"{self.name}: {method} /api{path}"
        if status == 401:
            raise ImmichPermissionError(f"{call}: {self.url} does not accept the {self.name} key (401); "
                                        f"make a key with {permission}", permission)
        if status == 403:
            raise ImmichPermissionError(f"{call}: the {self.name} key lacks the permission {permission} (403)",
                                        permission)
        answer.read()
        raise ImmichError(f"{call}: {status} {_message(answer)}")


def _message(answer: httpx.Response) -> str:
    """Immich's one-line reason for a refusal, when it gives one."""
    try:
        message = answer.json().get("message", "")
    except (ValueError, AttributeError):
        return answer.reason_phrase
    if isinstance(message, list):
        message = "; ".join(map(str, message))
    return " ".join(str(message).split())[:200] or answer.reason_phrase


def _album(a: Mapping[str, Any]) -> Album:
    return Album(a["id"], a["albumName"], a["assetCount"], a.get("lastModifiedAssetTimestamp"), a["hasSharedLink"],
                 a["updatedAt"])


def _link(a: Mapping[str, Any]) -> SharedLink:
    return SharedLink(a["id"], a["key"], a["showMetadata"], a["allowDownload"])
