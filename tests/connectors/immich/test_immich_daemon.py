"""The Immich connector end to end: the real daemon (``Service``, as ``anon-plugin watch`` runs it), a real
SQLite store, real photos uploaded as the owner's assets, the fake Immich over real HTTP, the CLI.

One daemon serves the whole module (its models load once); each test uses its own album. The albums'
policy is a blur without verification, to be quick. Waits have deadlines, never bare sleeps.

``-m real_immich`` runs the same tests against a real Immich at IMMICH_URL (see ``Real`` for its key
files), skipped when it is not set; the tests that break the server (503s, a revoked key) or that a real
Immich cannot stage (a duplicate owner asset, a fake video) run against the fake only.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fake import PUBLIC_PERMISSIONS, SOURCE_PERMISSIONS, FakeImmich, Served

from anon_plugin import albums, policies
from anon_plugin.config import NOT_SETTINGS, Settings, load_settings
from anon_plugin.connectors.immich.client import ImmichClient, neutral_name, read_key
from anon_plugin.daemon.service import Service
from anon_plugin.store import migrate
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Album, Job, Output, Photo

BLUR = policies.DEFAULT.with_changes(method="blur", verify=False)
INTERVAL = 0.2  # seconds between polls
DEADLINE = 60.0  # generous for a loaded 2-core machine; a passing test waits a few seconds
RUN = uuid.uuid4().hex[:6]  # in the albums' names: a real Immich keeps the albums of earlier runs


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> object:
    """``condition()`` once it is truthy, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return found


@dataclass(frozen=True)
class PublicAsset:
    """An asset of the public user, as the tests look at it."""

    name: str
    data: bytes
    checksum: str


class Server(Protocol):
    """The Immich the module runs against: the fake (by default) or a real one (``real_immich``). The tests set
    the owner's albums up and look at the public user's assets through it, never through the connector."""

    url: str
    source_key: str
    public_key: str
    fake: FakeImmich | None  # None against a real Immich: the tests that break the server are skipped

    def add_album(self, name: str, photos: list[bytes], videos: int = 0) -> tuple[str, list[str]]: ...
    def remove_from_album(self, album_id: str, asset_id: str) -> None: ...
    def source_data(self, asset_id: str) -> bytes: ...
    def public_asset(self, asset_id: str) -> PublicAsset | None: ...
    def album_assets(self, album_id: str) -> list[str]: ...
    def link(self, link_id: str) -> tuple[str, bool] | None: ...


class Fake:
    """The fake Immich over HTTP, with an owner holding the source key and a public user holding the public key."""

    def __init__(self, served: Served):
        self.served, self.fake, self.url = served, served.fake, served.url
        self.source_key, self.public_key = served.source_key, served.public_key

    def add_album(self, name: str, photos: list[bytes], videos: int = 0) -> tuple[str, list[str]]:
        assets = [self.fake.add_asset(self.served.owner, data, name=f"IMG_20240601_1015{i:02}.jpg")
                  for i, data in enumerate(photos)]
        assets += [self.fake.add_asset(self.served.owner, b"not really a video", name=f"VID_{i}.mp4", type="VIDEO")
                   for i in range(videos)]
        return self.fake.add_album(self.served.owner, name, assets).id, [a.id for a in assets]

    def remove_from_album(self, album_id: str, asset_id: str) -> None:
        self.fake.remove_from_album(self.fake.albums[album_id], self.fake.assets[asset_id])

    def source_data(self, asset_id: str) -> bytes:
        return self.fake.assets[asset_id].data

    def public_asset(self, asset_id: str) -> PublicAsset | None:
        found = self.fake.assets.get(asset_id)
        if found is None:
            return None
        assert found.owner is self.served.public, "a copy belongs to the public user"
        return PublicAsset(found.name, found.data, found.checksum)

    def album_assets(self, album_id: str) -> list[str]:
        album = self.fake.albums[album_id]
        assert album.owner is self.served.public, "a mirror album belongs to the public user"
        return list(album.assets)

    def link(self, link_id: str) -> tuple[str, bool] | None:
        found = self.fake.links.get(link_id)
        return (found.album_id, found.show_metadata) if found else None


class Real:
    """A real Immich at IMMICH_URL. Besides the connector's two keys (IMMICH_SOURCE_KEY_FILE,
    IMMICH_PUBLIC_KEY_FILE) the tests need two keys to set up and look (IMMICH_OWNER_KEY_FILE: the owner's,
    with asset.upload, album.create, albumAsset.create, albumAsset.delete; IMMICH_PUBLIC_READ_KEY_FILE: the
    public user's, with asset.read, asset.download, sharedLink.read)."""

    fake = None

    def __init__(self, url: str, folder: Path):
        self.url, self.folder = url, folder
        self.source_key, self.public_key = (read_key(Path(os.environ[f"IMMICH_{who}_KEY_FILE"]))
                                            for who in ("SOURCE", "PUBLIC"))
        self.owner = ImmichClient(url, read_key(Path(os.environ["IMMICH_OWNER_KEY_FILE"])), name="owner")
        self.reader = ImmichClient(url, read_key(Path(os.environ["IMMICH_PUBLIC_READ_KEY_FILE"])), name="reader")

    def add_album(self, name: str, photos: list[bytes], videos: int = 0) -> tuple[str, list[str]]:
        assert not videos, "the video test runs against the fake only"
        ids = []
        for data in photos:
            path = self.folder / f"{uuid.uuid4().hex}.jpg"
            path.write_bytes(data)
            ids.append(self.owner.upload(path).id)
        album_id = self.owner.create_album(name)
        self.owner.add_to_album(album_id, ids)
        return album_id, ids

    def remove_from_album(self, album_id: str, asset_id: str) -> None:
        self.owner._send("DELETE", f"/albums/{album_id}/assets", "albumAsset.delete", json={"ids": [asset_id]})

    def source_data(self, asset_id: str) -> bytes:
        path = self.folder / f"{uuid.uuid4().hex}.original"
        self.owner.download(asset_id, path)
        return path.read_bytes()

    def public_asset(self, asset_id: str) -> PublicAsset | None:
        answer = self.reader._http.get(f"/assets/{asset_id}")
        if answer.status_code >= 400 or answer.json().get("isTrashed"):
            return None
        path = self.folder / f"{uuid.uuid4().hex}.copy"
        self.reader.download(asset_id, path)
        return PublicAsset(answer.json()["originalFileName"], path.read_bytes(), answer.json()["checksum"])

    def album_assets(self, album_id: str) -> list[str]:
        return [a.id for a in self.reader.album_assets(album_id)]

    def link(self, link_id: str) -> tuple[str, bool] | None:
        answer = self.reader._http.get(f"/shared-links/{link_id}")
        if answer.status_code >= 400:
            return None
        return answer.json()["album"]["id"], answer.json()["showMetadata"]


@pytest.fixture(scope="module", params=["fake", pytest.param("real", marks=pytest.mark.real_immich)])
def immich(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The fake Immich (it fails the module if either side broke Immich's spec), or the real one at
    IMMICH_URL (skipped when that is not set)."""
    if request.param == "real":
        if not os.environ.get("IMMICH_URL"):
            pytest.skip("IMMICH_URL is not set: no real Immich to run against")
        yield Real(os.environ["IMMICH_URL"], tmp_path_factory.mktemp("real-immich"))
        return
    fake = FakeImmich()
    owner, public = fake.add_user("Owner"), fake.add_user("Public")
    source_key = fake.add_key(owner, SOURCE_PERMISSIONS)
    public_key = fake.add_key(public, PUBLIC_PERMISSIONS)
    with fake.serve() as url:
        yield Fake(Served(fake, url, owner, public, source_key, public_key))
    assert not fake.errors, "Immich's spec broken:\n" + "\n".join(fake.errors)


def the_fake(immich: Server) -> FakeImmich:
    """The fake; a test that needs it (to break the server, or to read its log) is skipped against a real one."""
    if immich.fake is None:
        pytest.skip("needs the fake Immich")
    return immich.fake


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, immich: Server) -> dict[str, str]:
    """ANON_* settings of a site with an empty library, Immich polled every INTERVAL (its key files private);
    no ANON_* setting of the caller's environment leaks in (CliRunner's env replaces those)."""
    root = tmp_path_factory.mktemp("site")
    keys = {}
    for who, key in (("source", immich.source_key), ("public", immich.public_key)):
        keys[who] = root / f"{who}.key"
        keys[who].write_text(key + "\n")
        keys[who].chmod(0o600)
    for folder in ("library", "public", "data"):
        (root / folder).mkdir()
    return {"ANON_DATA_DIR": str(root / "data"), "ANON_LIBRARY_ROOTS": str(root / "library"),
            "ANON_PUBLIC_ROOT": str(root / "public"), "ANON_IMMICH_URL": immich.url,
            "ANON_IMMICH_SOURCE_KEY_FILE": str(keys["source"]), "ANON_IMMICH_PUBLIC_KEY_FILE": str(keys["public"]),
            "ANON_IMMICH_POLL_INTERVAL": str(INTERVAL), "ANON_INFERENCE_THREADS": "1"}


@pytest.fixture(scope="module")
def daemon(env: dict[str, str]) -> Iterator[Service]:
    """The daemon, started as ``anon-plugin watch`` starts it, for the whole module."""
    settings: Settings = load_settings(None, environ=env)
    migrate.upgrade(settings.database_url)
    service = Service(settings)
    service.start()
    yield service
    service.stop(timeout=DEADLINE)
    service.engine.dispose()


def cli(env: dict[str, str], *args: str) -> Result:
    from anon_plugin.cli import main

    others = {k: None for k in os.environ if k.startswith("ANON_") and k not in NOT_SETTINGS}  # none leaks in
    return CliRunner().invoke(main, list(args), env={**others, **env, "ANON_CONFIG": None}, catch_exceptions=False)


def shared(immich: Server, daemon: Service, name: str, photos: list[Path], videos: int = 0) -> tuple[str, list[str]]:
    """An album of the owner holding ``photos`` (and ``videos``), shared under the blur policy once the daemon
    has seen it: its Immich id and its asset ids."""
    album_id, assets = immich.add_album(f"{name} {RUN}", [p.read_bytes() for p in photos], videos)

    def row() -> Album | None:
        with session_scope(daemon.engine, read_only=True) as session:
            return session.scalar(sa.select(Album).where(Album.external_id == album_id))

    wait_until(row, f"the daemon to see album {name}")
    with session_scope(daemon.engine) as session:  # one transaction: no poll queues under another policy
        found = session.scalars(sa.select(Album).where(Album.external_id == album_id)).one()
        albums.share(session, found, (), by="test")
        policies.save(session, found.id, BLUR, "test")
    return album_id, assets


def outputs(daemon: Service, assets: list[str]) -> dict[str, tuple[str, str]]:
    """Each asset's newest output: (status, public path), by asset id."""
    with session_scope(daemon.engine, read_only=True) as session:
        rows = session.execute(sa.select(Photo.relative_path, Output.status, Output.public_path)
                               .join(Output, Output.photo_id == Photo.id)
                               .where(Photo.relative_path.in_(assets)).order_by(Output.id)).all()
    return {path: (status, public_path) for path, status, public_path in rows}


def published(daemon: Service, assets: list[str]) -> dict[str, str]:
    """The public asset id of each of ``assets`` once every one is published, else an empty dict."""
    found = outputs(daemon, assets)
    if len(found) < len(assets) or any(status != "published" for status, _ in found.values()):
        return {}
    return {asset_id: public_path.removeprefix("immich:") for asset_id, (_, public_path) in found.items()}


def mirror_of(daemon: Service, album_id: str) -> tuple[str | None, str | None]:
    """The ids of the album's mirror album and its link, as the store has them."""
    with session_scope(daemon.engine, read_only=True) as session:
        row = session.scalars(sa.select(Album).where(Album.external_id == album_id)).one()
        return row.mirror_album_id, row.mirror_link_id


def linked(daemon: Service, album_id: str) -> tuple[str, str]:
    """The album's mirror and link ids, once the worker has made the link (after the batch)."""
    return wait_until(lambda: (found := mirror_of(daemon, album_id))[1] is not None and found,  # type: ignore
                      "the mirror album's link")


def test_a_new_asset_is_published_under_a_neutral_name_in_the_mirror_album_with_a_link_without_metadata(
        immich: Server, daemon: Service, wild_photos):
    album_id, (asset,) = shared(immich, daemon, "Holidays", [wild_photos[0]])
    copies = wait_until(lambda: published(daemon, [asset]), "the photo published")
    copy = immich.public_asset(copies[asset])
    original = wild_photos[0].read_bytes()
    assert copy is not None and copy.data != original  # the public user's, anonymized
    assert copy.name == neutral_name(copy.checksum, ".jpg") and "IMG" not in copy.name and "2024" not in copy.name
    mirror, link = linked(daemon, album_id)
    assert immich.album_assets(mirror) == [copies[asset]]
    assert immich.link(link) == (mirror, False)  # shows no metadata
    assert immich.source_data(asset) == original  # the source is never written


def test_an_asset_removed_from_the_source_album_loses_its_copy(immich: Server, daemon: Service, wild_photos):
    album_id, (kept, removed) = shared(immich, daemon, "Removed", wild_photos[1:3])
    copies = wait_until(lambda: published(daemon, [kept, removed]), "both photos published")
    immich.remove_from_album(album_id, removed)
    wait_until(lambda: immich.public_asset(copies[removed]) is None, "the removed asset's copy deleted")
    wait_until(lambda: outputs(daemon, [removed])[removed][0] == "removed", "its output marked removed")
    assert immich.public_asset(copies[kept]) is not None and outputs(daemon, [kept])[kept][0] == "published"
    assert immich.source_data(removed) == wild_photos[2].read_bytes()  # the source is never written


def test_unsharing_with_the_cli_deletes_the_copies_and_the_link_at_once(immich: Server, daemon: Service,
                                                                        env: dict[str, str], wild_photos):
    album_id, assets = shared(immich, daemon, "Unshared", wild_photos[3:5])
    copies = wait_until(lambda: published(daemon, assets), "both photos published")
    _, link = linked(daemon, album_id)
    result = cli(env, "albums", "unshare", f"Unshared {RUN}", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"anon-plugin: album Unshared {RUN} unshared; 2 public copies removed\n"
    assert all(immich.public_asset(c) is None for c in copies.values()) and immich.link(link) is None
    assert {status for status, _ in outputs(daemon, assets).values()} == {"removed"}


def test_unsharing_in_the_panel_deletes_the_copies_and_the_link_at_once(immich: Server, daemon: Service,
                                                                         wild_photos):
    from panel_session import PASSWORD, TOKEN, signed_in

    from anon_plugin.admin import accounts, create_app

    album_id, assets = shared(immich, daemon, "Panel", wild_photos[10:12])
    copies = wait_until(lambda: published(daemon, assets), "both photos published")
    _, link = linked(daemon, album_id)
    with session_scope(daemon.engine) as session:
        accounts.add(session, "admin", PASSWORD)
        row_id = session.scalars(sa.select(Album.id).where(Album.external_id == album_id)).one()
    client = signed_in(create_app(daemon.settings, service=daemon).test_client())
    token = TOKEN.search(client.get(f"/albums/{row_id}/unshare").text)
    assert token is not None
    page = client.post(f"/albums/{row_id}/unshare", data={"csrf_token": token.group(1)}, follow_redirects=True)
    assert f"Panel {RUN} is no longer shared: 2 public copies removed." in page.text
    assert all(immich.public_asset(c) is None for c in copies.values()) and immich.link(link) is None


def test_a_server_going_down_mid_upload_publishes_each_photo_once(immich: Server, daemon: Service, wild_photos):
    fake = the_fake(immich)
    fake.fail_on["upload"] = [503, 503]  # the server answers 503 while it restarts,
    fake.lose_on["upload"] = 1  # then stores the next upload but goes down before answering
    uploads = fake.calls.count("POST /api/assets")
    album_id, assets = shared(immich, daemon, "Restarted", wild_photos[5:7])
    copies = wait_until(lambda: published(daemon, assets), "both photos published")
    mirror, _ = mirror_of(daemon, album_id)
    assert mirror is not None and len(set(copies.values())) == 2
    assert sorted(immich.album_assets(mirror)) == sorted(copies.values())
    assert fake.calls.count("POST /api/assets") - uploads == 2 + 3  # two photos; two refused, one lost
    assert not fake.fail_on["upload"] and not fake.lose_on["upload"]


def test_a_duplicate_upload_gives_one_copy(immich: Server, daemon: Service, wild_photos):
    fake = the_fake(immich)  # a real Immich keeps one asset of the owner's same bytes: no two to publish
    public = fake.keys[immich.public_key][0]
    before = sum(a.owner is public for a in fake.assets.values())
    album_id, (one, two) = shared(immich, daemon, "Twice", [wild_photos[7], wild_photos[7]])  # the same bytes
    copies = wait_until(lambda: published(daemon, [one, two]), "both photos published")
    assert copies[one] == copies[two]  # the second upload was a duplicate: the same public asset
    mirror, _ = mirror_of(daemon, album_id)
    assert mirror is not None and immich.album_assets(mirror) == [copies[one]]
    assert sum(a.owner is public for a in fake.assets.values()) == before + 1


def test_a_video_is_listed_as_not_published_and_never_downloaded_nor_uploaded(
        immich: Server, daemon: Service, env: dict[str, str], wild_photos):
    fake = the_fake(immich)  # a real Immich refuses bytes that are no video
    album_id, (photo, video) = shared(immich, daemon, "With a video", [wild_photos[8]], videos=1)
    copies = wait_until(lambda: published(daemon, [photo]), "the photo published")
    mirror, _ = mirror_of(daemon, album_id)
    assert mirror is not None and immich.album_assets(mirror) == [copies[photo]] and outputs(daemon, [video]) == {}
    assert f"GET /api/assets/{video}/original" not in fake.calls
    public = fake.keys[immich.public_key][0]
    assert not any(a.data == fake.assets[video].data for a in fake.assets.values() if a.owner is public)
    listed = json.loads(cli(env, "albums", "list", "--json").stdout)
    (row,) = [r for r in listed if r["name"] == f"With a video {RUN}"]
    assert [n["path"] for n in row["not_published"]] == [video]


def test_a_refused_public_key_fails_the_job_naming_the_permission_and_publishes_nothing(
        immich: Server, daemon: Service, wild_photos):
    fake = the_fake(immich)  # revoking a real key would break the other tests' runs
    grant = fake.keys.pop(immich.public_key)  # revoked in Immich: 401
    try:
        album_id, (asset,) = shared(immich, daemon, "Refused", [wild_photos[9]])

        def error() -> str | None:
            with session_scope(daemon.engine, read_only=True) as session:
                return session.scalar(sa.select(Job.last_error).join(Photo, Photo.id == Job.photo_id)
                                      .where(Photo.relative_path == asset))

        message = str(wait_until(error, "the job to fail"))
        assert "401" in message and "album.create" in message and immich.public_key not in message  # its 1st call
        assert outputs(daemon, [asset]) == {} and mirror_of(daemon, album_id) == (None, None)
    finally:
        fake.keys[immich.public_key] = grant
