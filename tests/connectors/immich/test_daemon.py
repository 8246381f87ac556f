"""The Immich connector end to end: the real daemon (``Service``, as ``anon-plugin watch`` runs it), a real
SQLite store, real photos uploaded as the owner's assets, the fake Immich over real HTTP, the CLI.

One daemon serves the whole module (its models load once); each test uses its own album. The albums'
policy is a blur without verification, to be quick. Waits have deadlines, never bare sleeps.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fake import PUBLIC_PERMISSIONS, SOURCE_PERMISSIONS, Asset, FakeImmich, Served

from anon_plugin import albums, policies
from anon_plugin.config import NOT_SETTINGS, Settings, load_settings
from anon_plugin.connectors.immich.client import neutral_name
from anon_plugin.daemon.service import Service
from anon_plugin.store import migrate
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Album, Job, Output, Photo

BLUR = policies.DEFAULT.with_changes(method="blur", verify=False)
INTERVAL = 0.2  # seconds between polls
DEADLINE = 60.0  # generous for a loaded 2-core machine; a passing test waits a few seconds


def wait_until(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> object:
    """``condition()`` once it is truthy, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return found


@pytest.fixture(scope="module")
def immich() -> Iterator[Served]:
    """The fake Immich for the whole module; it fails the module if either side broke Immich's spec."""
    fake = FakeImmich()
    owner, public = fake.add_user("Owner"), fake.add_user("Public")
    source_key = fake.add_key(owner, SOURCE_PERMISSIONS)
    public_key = fake.add_key(public, PUBLIC_PERMISSIONS)
    with fake.serve() as url:
        yield Served(fake, url, owner, public, source_key, public_key)
    assert not fake.errors, "Immich's spec broken:\n" + "\n".join(fake.errors)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, immich: Served) -> dict[str, str]:
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


def shared(immich: Served, daemon: Service, name: str, photos: list[Path], videos: int = 0) -> tuple[str, list[Asset]]:
    """An album of the owner holding ``photos`` (and ``videos``), shared under the blur policy once the daemon
    has seen it: its Immich id and its assets."""
    assets = [immich.fake.add_asset(immich.owner, p.read_bytes(), name=f"IMG_20240601_1015{i:02}.jpg")
              for i, p in enumerate(photos)]
    assets += [immich.fake.add_asset(immich.owner, b"not really a video", name=f"VID_{i}.mp4", type="VIDEO")
               for i in range(videos)]
    album = immich.fake.add_album(immich.owner, name, assets)

    def row() -> Album | None:
        with session_scope(daemon.engine, read_only=True) as session:
            return session.scalar(sa.select(Album).where(Album.external_id == album.id))

    wait_until(row, f"the daemon to see album {name}")
    with session_scope(daemon.engine) as session:  # one transaction: no poll queues under another policy
        found = session.scalars(sa.select(Album).where(Album.external_id == album.id)).one()
        albums.share(session, found, (), by="test")
        policies.save(session, found.id, BLUR, "test")
    return album.id, assets


def outputs(daemon: Service, assets: list[Asset]) -> dict[str, tuple[str, str]]:
    """Each asset's newest output: (status, public path), by asset id."""
    with session_scope(daemon.engine, read_only=True) as session:
        rows = session.execute(sa.select(Photo.relative_path, Output.status, Output.public_path)
                               .join(Output, Output.photo_id == Photo.id)
                               .where(Photo.relative_path.in_([a.id for a in assets])).order_by(Output.id)).all()
    return {path: (status, public_path) for path, status, public_path in rows}


def published(daemon: Service, assets: list[Asset]) -> dict[str, str]:
    """The public asset id of each of ``assets`` once every one is published, else an empty dict."""
    found = outputs(daemon, assets)
    if len(found) < len(assets) or any(status != "published" for status, _ in found.values()):
        return {}
    return {asset_id: public_path.removeprefix("immich:") for asset_id, (_, public_path) in found.items()}


def mirror_of(immich: Served, daemon: Service, album_id: str):
    with session_scope(daemon.engine, read_only=True) as session:
        row = session.scalars(sa.select(Album).where(Album.external_id == album_id)).one()
        mirror_id, link_id = row.mirror_album_id, row.mirror_link_id
    return immich.fake.albums.get(mirror_id or ""), immich.fake.links.get(link_id or "")


def linked(immich: Served, daemon: Service, album_id: str):
    """The album's mirror and its link, once the worker has made the link (after the batch)."""
    return wait_until(lambda: (found := mirror_of(immich, daemon, album_id))[1] is not None and found,
                      "the mirror album's link")


def test_a_new_asset_is_published_under_a_neutral_name_in_the_mirror_album_with_a_link_without_metadata(
        immich: Served, daemon: Service, wild_photos):
    album_id, (asset,) = shared(immich, daemon, "Holidays", [wild_photos[0]])
    copies = wait_until(lambda: published(daemon, [asset]), "the photo published")
    copy = immich.fake.assets[copies[asset.id]]
    assert copy.owner is immich.public and copy.data != asset.data  # the public user's, anonymized
    assert copy.name == neutral_name(copy.checksum, ".jpg") and "IMG" not in copy.name and "2024" not in copy.name
    mirror, link = linked(immich, daemon, album_id)
    assert mirror.owner is immich.public and mirror.name == "Holidays" and mirror.assets == [copy.id]
    assert (link.album_id, link.show_metadata) == (mirror.id, False)
    assert asset.id in immich.fake.assets and asset.data == immich.fake.assets[asset.id].data  # source untouched


def test_an_asset_removed_from_the_source_album_loses_its_copy(immich: Served, daemon: Service, wild_photos):
    album_id, (kept, removed) = shared(immich, daemon, "Removed", wild_photos[1:3])
    copies = wait_until(lambda: published(daemon, [kept, removed]), "both photos published")
    immich.fake.remove_from_album(immich.fake.albums[album_id], removed)
    wait_until(lambda: copies[removed.id] not in immich.fake.assets, "the removed asset's copy deleted")
    wait_until(lambda: outputs(daemon, [removed])[removed.id][0] == "removed", "its output marked removed")
    assert copies[kept.id] in immich.fake.assets and outputs(daemon, [kept])[kept.id][0] == "published"
    assert removed.id in immich.fake.assets  # the source is never written


def test_unsharing_with_the_cli_deletes_the_copies_and_the_link_at_once(immich: Served, daemon: Service,
                                                                        env: dict[str, str], wild_photos):
    album_id, assets = shared(immich, daemon, "Unshared", wild_photos[3:5])
    copies = wait_until(lambda: published(daemon, assets), "both photos published")
    _, link = linked(immich, daemon, album_id)
    result = cli(env, "albums", "unshare", "Unshared", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stderr == "anon-plugin: album Unshared unshared; 2 public copies removed\n"
    assert not set(copies.values()) & set(immich.fake.assets) and link.id not in immich.fake.links
    assert {status for status, _ in outputs(daemon, assets).values()} == {"removed"}


def test_a_server_going_down_mid_upload_publishes_each_photo_once(immich: Served, daemon: Service, wild_photos):
    immich.fake.fail_on["upload"] = [503, 503]  # the server answers 503 while it restarts,
    immich.fake.lose_on["upload"] = 1  # then stores the next upload but goes down before answering
    uploads = immich.fake.calls.count("POST /api/assets")
    album_id, assets = shared(immich, daemon, "Restarted", wild_photos[5:7])
    copies = wait_until(lambda: published(daemon, assets), "both photos published")
    mirror, _ = mirror_of(immich, daemon, album_id)
    assert len(set(copies.values())) == 2 and sorted(mirror.assets) == sorted(copies.values())
    assert len([a for a in immich.fake.assets.values() if a.id in copies.values()]) == 2
    assert immich.fake.calls.count("POST /api/assets") - uploads == 2 + 3  # two photos; two refused, one lost
    assert not immich.fake.fail_on["upload"] and not immich.fake.lose_on["upload"]


def test_a_duplicate_upload_gives_one_copy(immich: Served, daemon: Service, wild_photos):
    before = sum(a.owner is immich.public for a in immich.fake.assets.values())
    album_id, (one, two) = shared(immich, daemon, "Twice", [wild_photos[7], wild_photos[7]])  # the same bytes
    copies = wait_until(lambda: published(daemon, [one, two]), "both photos published")
    assert copies[one.id] == copies[two.id]  # the second upload was a duplicate: the same public asset
    mirror, _ = mirror_of(immich, daemon, album_id)
    assert mirror.assets == [copies[one.id]]
    assert sum(a.owner is immich.public for a in immich.fake.assets.values()) == before + 1


def test_a_video_is_listed_as_not_published_and_never_downloaded_nor_uploaded(
        immich: Served, daemon: Service, env: dict[str, str], wild_photos):
    album_id, (photo, video) = shared(immich, daemon, "With a video", [wild_photos[8]], videos=1)
    copies = wait_until(lambda: published(daemon, [photo]), "the photo published")
    mirror, _ = mirror_of(immich, daemon, album_id)
    assert mirror.assets == [copies[photo.id]] and outputs(daemon, [video]) == {}
    assert f"GET /api/assets/{video.id}/original" not in immich.fake.calls
    assert not any(a.data == video.data for a in immich.fake.assets.values() if a.owner is immich.public)
    listed = json.loads(cli(env, "albums", "list", "--json").stdout)
    (row,) = [r for r in listed if r["name"] == "With a video"]
    assert [n["path"] for n in row["not_published"]] == [video.id]


def test_a_refused_public_key_fails_the_job_naming_the_permission_and_publishes_nothing(
        immich: Served, daemon: Service, wild_photos):
    grant = immich.fake.keys.pop(immich.public_key)  # revoked in Immich: 401
    try:
        album_id, (asset,) = shared(immich, daemon, "Refused", [wild_photos[9]])

        def error() -> str | None:
            with session_scope(daemon.engine, read_only=True) as session:
                return session.scalar(sa.select(Job.last_error).join(Photo, Photo.id == Job.photo_id)
                                      .where(Photo.relative_path == asset.id))

        message = str(wait_until(error, "the job to fail"))
        assert "401" in message and "album.create" in message and immich.public_key not in message  # its 1st call
        assert outputs(daemon, [asset]) == {} and mirror_of(immich, daemon, album_id) == (None, None)
    finally:
        immich.fake.keys[immich.public_key] = grant
