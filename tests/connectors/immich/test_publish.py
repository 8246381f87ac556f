"""Publishing an Immich album to the public Immich user: the real worker, a real SQLite store, real photos,
the fake Immich over real HTTP."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import piexif
import pytest
import sqlalchemy as sa
from fake import PUBLIC_PERMISSIONS, Served
from PIL import Image
from sqlalchemy.engine import Engine

from anon_plugin import albums, policies
from anon_plugin.config import ImmichSettings
from anon_plugin.connectors.immich import client as client_module
from anon_plugin.connectors.immich import target
from anon_plugin.connectors.immich.client import ImmichClient, Retry
from anon_plugin.connectors.immich.source import poll
from anon_plugin.jobs import worker as worker_module
from anon_plugin.jobs.worker import Worker
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Album, Job, Output, Photo

FAST = Retry(attempts=4, first_delay=0.001, factor=2.0, max_delay=0.01)
BLUR = policies.DEFAULT.with_changes(method="blur", verify=False)


def _key(folder: Path, name: str, key: str) -> Path:
    path = folder / name
    path.write_text(key)
    path.chmod(0o600)
    return path


@pytest.fixture
def site(immich: Served, engine: Engine, tmp_path: Path, wild_photos, monkeypatch):
    """A shared Immich album of two real photos (one with GPS added), polled once: two jobs queued."""
    monkeypatch.setattr(client_module, "connect", functools.partial(client_module.connect, retry=FAST))  # fast
    gps = {"GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (0, 1))},
           "0th": {piexif.ImageIFD.Artist: b"Anna Example"}}
    first = io.BytesIO()
    Image.open(wild_photos[0]).save(first, "JPEG", exif=piexif.dump(gps))
    one = immich.fake.add_asset(immich.owner, first.getvalue(), name="IMG_20240601_101500.jpg")
    two = immich.fake.add_asset(immich.owner, Path(wild_photos[7]).read_bytes(), name="IMG_20240602_090000.jpg")
    album = immich.fake.add_album(immich.owner, "Holidays", [one, two])
    settings = ImmichSettings(url=immich.url, source_key_file=_key(tmp_path, "source.key", immich.source_key),
                              public_key_file=_key(tmp_path, "public.key", immich.public_key))
    polled(immich, engine)
    with session_scope(engine) as session:
        row = session.scalars(sa.select(Album).where(Album.external_id == album.id)).one()
        albums.share(session, row, (), by="test")
        policies.save(session, row.id, BLUR, "test")
    polled(immich, engine)
    worker = Worker(engine, tmp_path / "public", "w1", immich=settings, data_dir=tmp_path / "data")
    (tmp_path / "data").mkdir()
    return album, (one, two), worker, settings


def polled(immich: Served, engine: Engine, public: bool = False):
    with ImmichClient(immich.url, immich.source_key, name="source", retry=FAST) as source, \
            ImmichClient(immich.url, immich.public_key, name="public", retry=FAST) as public_client:
        return poll(source, engine, public=public_client if public else None)


def outputs(engine: Engine) -> list[tuple[str, str, str]]:
    with session_scope(engine, read_only=True) as session:
        return [(p.relative_path, o.public_path, o.status) for o, p in session.execute(
            sa.select(Output, Photo).join(Photo, Photo.id == Output.photo_id).order_by(Output.id))]


def public_assets(immich: Served):
    return [a for a in immich.fake.assets.values() if a.owner is immich.public]


def test_a_new_asset_is_published_to_the_public_user_in_the_mirror_album_with_one_link(
        immich: Served, engine: Engine, site, tmp_path: Path):
    album, (one, two), worker, _ = site
    assert worker.run_once() == 2
    copies = public_assets(immich)
    assert len(copies) == 2 and not list((tmp_path / "public").glob("**/*.*"))  # nothing in the public root
    names = {c.name for c in copies}
    assert all("IMG" not in n and "2024" not in n for n in names)  # neutral: no original name, no date
    (mirror,) = [a for a in immich.fake.albums.values() if a.owner is immich.public]
    assert mirror.name == "Holidays" and sorted(mirror.assets) == sorted(c.id for c in copies)
    (link,) = immich.fake.links.values()
    assert (link.album_id, link.show_metadata, link.allow_download) == (mirror.id, False, False)
    assert not {c.data for c in copies} & {one.data, two.data}  # anonymized, not the originals
    by_path = {o[0]: o for o in outputs(engine)}
    assert {o[2] for o in by_path.values()} == {"published"}
    copy = immich.fake.assets[by_path[one.id][1].removeprefix("immich:")]
    exif = piexif.load(copy.data)
    assert not exif["GPS"] and piexif.ImageIFD.Artist not in exif["0th"]  # no GPS, no owner
    with session_scope(engine, read_only=True) as session:
        row = session.scalars(sa.select(Album).where(Album.external_id == album.id)).one()
        assert (row.mirror_album_id, row.mirror_link_id) == (mirror.id, link.id)
        assert {p.state for p in session.scalars(sa.select(Photo))} == {"published"}
    # A second round publishes nothing twice.
    polled(immich, engine, public=True)
    assert worker.run_once() == 0
    assert len(public_assets(immich)) == 2 and len(immich.fake.links) == 1


def test_an_asset_removed_from_the_source_album_takes_its_public_copy_with_it(immich: Served, engine: Engine, site):
    album, (one, two), worker, _ = site
    worker.run_once()
    copy_of_two = dict((o[0], o[1]) for o in outputs(engine))[two.id].removeprefix("immich:")
    immich.fake.remove_from_album(album, two)
    assert polled(immich, engine, public=True).withdrawn == target.Withdrawn(copies=1)
    assert copy_of_two not in immich.fake.assets and len(public_assets(immich)) == 1
    assert {o[0]: o[2] for o in outputs(engine)} == {one.id: "published", two.id: "removed"}
    assert two.id in immich.fake.assets  # the source is never written


def test_unsharing_deletes_the_copies_and_the_link(immich: Served, engine: Engine, site, tmp_path: Path):
    album, _, worker, _ = site
    worker.run_once()
    with session_scope(engine) as session, \
            ImmichClient(immich.url, immich.public_key, name="public", retry=FAST) as public:
        row = session.scalars(sa.select(Album).where(Album.external_id == album.id)).one()
        assert albums.unshare(session, row, tmp_path / "public", by="test", immich=public) == 2
    assert public_assets(immich) == [] and immich.fake.links == {}
    assert {o[2] for o in outputs(engine)} == {"removed"}


def test_unsharing_while_immich_is_down_leaves_the_withdrawal_to_the_next_poll(immich: Served, engine: Engine,
                                                                                site, tmp_path: Path):
    album, _, worker, _ = site
    worker.run_once()
    immich.fake.fail_next = [503] * FAST.attempts
    with session_scope(engine) as session, \
            ImmichClient(immich.url, immich.public_key, name="public", retry=FAST) as public:
        row = session.scalars(sa.select(Album).where(Album.external_id == album.id)).one()
        assert albums.unshare(session, row, tmp_path / "public", by="test", immich=public) == 0
    assert len(public_assets(immich)) == 2 and {o[2] for o in outputs(engine)} == {"published"}  # owed
    assert polled(immich, engine, public=True).withdrawn == target.Withdrawn(copies=2, links=1)
    assert public_assets(immich) == [] and immich.fake.links == {}
    assert {o[2] for o in outputs(engine)} == {"removed"}


@pytest.mark.parametrize("key, refusal", [
    ("not-a-key", "does not accept the public key (401); make a key with album.create"),
    (None, "the public key lacks the permission asset.upload (403)"),
])
def test_a_refused_public_key_fails_the_job_naming_the_permission(immich: Served, engine: Engine, site,
                                                                  tmp_path: Path, key, refusal):
    album, _, worker, settings = site
    key = key or immich.fake.add_key(immich.public, PUBLIC_PERMISSIONS - {"asset.upload"})
    worker.immich = ImmichSettings(url=settings.url, source_key_file=settings.source_key_file,
                                   public_key_file=_key(tmp_path, "bad.key", key))
    assert worker.run_once() == 2
    with session_scope(engine, read_only=True) as session:
        errors = [j.last_error for j in session.scalars(sa.select(Job))]
        assert {p.state for p in session.scalars(sa.select(Photo))} == {"pending"}
        assert {j.state for j in session.scalars(sa.select(Job))} == {"queued"}  # tried again after the backoff
    assert errors and all(refusal in (e or "") for e in errors)
    assert outputs(engine) == [] and public_assets(immich) == []


def test_immich_answering_503_mid_upload_publishes_once(immich: Served, engine: Engine, site, monkeypatch):
    album, _, worker, _ = site
    worker.max_batch = 1
    real_upload = ImmichClient.upload

    def flaky(self, path):
        immich.fake.fail_next = [503, 503]
        return real_upload(self, path)

    monkeypatch.setattr(ImmichClient, "upload", flaky)
    while worker.run_once():
        pass
    assert len(public_assets(immich)) == 2 and len(outputs(engine)) == 2
    assert immich.fake.calls.count("POST /api/assets") == 6  # each upload answered 503 twice, then served


def test_an_immich_photo_without_immich_settings_fails_with_one_line(immich: Served, engine: Engine, site):
    _, _, worker, _ = site
    worker.immich = None
    worker.run_once()
    with session_scope(engine, read_only=True) as session:
        assert {p.reason for p in session.scalars(sa.select(Photo))} == {worker_module.NO_IMMICH}
