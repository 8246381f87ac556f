"""Polling Immich albums into the store: the fake Immich over real HTTP, a real SQLite store at head."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fake import SOURCE_PERMISSIONS, Served
from sqlalchemy.engine import Engine

from anon_plugin import albums
from anon_plugin.albums import NotPublished
from anon_plugin.connectors.immich.client import ImmichClient, Retry
from anon_plugin.connectors.immich.source import VIDEO, Polled, album_address, poll
from anon_plugin.errors import ImmichPermissionError
from anon_plugin.jobs import queue
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Album, Job, Photo

PHOTO = Path(__file__).resolve().parents[3] / "examples" / "astronaut.png"
FAST = Retry(attempts=2, first_delay=0.001, factor=2.0, max_delay=0.01)
SEARCH = "POST /api/search/metadata"


def polled(immich: Served, engine: Engine, key: str | None = None, **kw) -> Polled:
    with ImmichClient(immich.url, key or immich.source_key, name="source", retry=FAST) as client:
        return poll(client, engine, **kw)


def share(engine: Engine, external_id: str) -> None:
    """Share an Immich album the way the CLI and the panel share any album."""
    with session_scope(engine) as session:
        album = session.scalars(sa.select(Album).where(Album.external_id == external_id)).one()
        assert albums.share(session, album, (), by="test") == 0


def photos(engine: Engine) -> dict[str, tuple[str | None, str, str | None]]:
    """Every photo by asset id: its checksum, state and reason."""
    with session_scope(engine, read_only=True) as session:
        return {p.relative_path: (p.checksum, p.state, p.reason) for p in session.scalars(sa.select(Photo))}


def jobs(engine: Engine) -> list[tuple[str, str]]:
    """Every job, oldest first: its photo's asset id and its state."""
    with session_scope(engine, read_only=True) as session:
        return [(path, state) for path, state in session.execute(
            sa.select(Photo.relative_path, Job.state).join(Photo, Photo.id == Job.photo_id).order_by(Job.id))]


def stored_albums(engine: Engine) -> list[tuple]:
    with session_scope(engine, read_only=True) as session:
        return [tuple(r) for r in session.execute(sa.select(
            Album.source, Album.external_id, Album.external_version, Album.root, Album.name, Album.shared,
            Album.removed_at).order_by(Album.id))]


@pytest.fixture
def holidays(immich: Served, engine: Engine):
    """A shared Immich album of two photos, polled once: its photos pending, each with a queued job."""
    first = immich.fake.add_asset(immich.owner, PHOTO.read_bytes(), name="IMG_1.png")
    second = immich.fake.add_asset(immich.owner, b"another photo", name="IMG_2.jpg")
    album = immich.fake.add_album(immich.owner, "Holidays", [first, second])
    polled(immich, engine)
    share(engine, album.id)
    immich.fake.calls.clear()
    return album, first, second


def test_an_album_is_listed_unshared_and_its_assets_not_read(immich: Served, engine: Engine):
    photo = immich.fake.add_asset(immich.owner, PHOTO.read_bytes())
    album = immich.fake.add_album(immich.owner, "Holidays", [photo])
    result = polled(immich, engine)
    assert result.added == ["Holidays"] and result.read == [] and result.queued == 0
    assert immich.fake.calls == ["GET /api/albums"]
    assert stored_albums(engine) == [("immich", album.id, None, album_address(immich.url, album.id), "Holidays",
                                      False, None)]
    assert photos(engine) == {} and jobs(engine) == []
    polled(immich, engine)  # still unshared: still not read
    assert SEARCH not in immich.fake.calls
    with session_scope(engine, read_only=True) as session:
        (summary,) = albums.summaries(session)
    assert (summary.name, summary.source, summary.shared, summary.photos) == ("Holidays", "immich", False, 0)


def test_a_shared_albums_assets_become_pending_photos_with_jobs(immich: Served, engine: Engine, holidays):
    album, first, second = holidays
    result = polled(immich, engine)
    assert result.read == ["Holidays"] and (result.new, result.queued) == (2, 2)
    assert immich.fake.calls == ["GET /api/albums", SEARCH]
    assert photos(engine) == {first.id: (first.checksum, "pending", None),
                              second.id: (second.checksum, "pending", None)}
    assert jobs(engine) == [(first.id, "queued"), (second.id, "queued")]
    with session_scope(engine, read_only=True) as session:
        (summary,) = albums.summaries(session)
    assert (summary.shared, summary.photos, summary.pending) == (True, 2, 2)


def test_a_second_poll_with_nothing_changed_reads_no_assets_and_queues_nothing(immich: Served, engine: Engine,
                                                                               holidays):
    polled(immich, engine)
    immich.fake.calls.clear()
    before = (photos(engine), jobs(engine), stored_albums(engine))
    result = polled(immich, engine)
    assert immich.fake.calls == ["GET /api/albums"]
    assert (result.read, result.new, result.changed, result.gone, result.queued) == ([], 0, 0, 0, 0)
    assert (photos(engine), jobs(engine), stored_albums(engine)) == before
    assert polled(immich, engine, force=True).read == ["Holidays"]  # unless asked to read every shared album
    assert jobs(engine) == before[1]


def test_sharing_again_after_unsharing_reads_the_album_again(immich: Served, engine: Engine, holidays,
                                                              tmp_path: Path):
    album, first, second = holidays
    polled(immich, engine)
    with session_scope(engine) as session:
        row = session.scalars(sa.select(Album).where(Album.external_id == album.id)).one()
        assert albums.unshare(session, row, tmp_path / "public", by="test") == 0
    assert jobs(engine) == [(first.id, "done"), (second.id, "done")]  # closed by the unsharing
    share(engine, album.id)
    immich.fake.calls.clear()
    result = polled(immich, engine)  # nothing changed in Immich, yet the album is read and its photos queued
    assert (result.read, result.queued) == (["Holidays"], 2) and SEARCH in immich.fake.calls


def test_an_asset_removed_from_the_album_marks_its_photo_removed(immich: Served, engine: Engine, holidays):
    album, first, second = holidays
    polled(immich, engine)
    immich.fake.remove_from_album(album, second)
    result = polled(immich, engine)
    assert (result.gone, result.queued) == (1, 0)
    assert photos(engine)[second.id] == (second.checksum, "removed", "removed from the Immich album")
    assert photos(engine)[first.id][1] == "pending"
    assert jobs(engine) == [(first.id, "queued"), (second.id, "done")]  # its waiting job closed
    assert second.id in immich.fake.assets  # the source is only read


def test_a_changed_checksum_queues_the_photo_again(immich: Served, engine: Engine, holidays):
    album, first, second = holidays
    polled(immich, engine)
    with session_scope(engine) as session:  # a worker publishes both
        for claimed in queue.claim(session, "worker-1", 10):
            assert queue.finish(session, claimed.job_id, "worker-1")
        session.execute(sa.update(Photo).values(state="published", sha256="a" * 64))
    immich.fake.edit_asset(first, b"the same photo, edited")
    result = polled(immich, engine)
    assert (result.changed, result.queued) == (1, 1)
    assert photos(engine)[first.id] == (first.checksum, "pending", None)
    assert photos(engine)[second.id] == (second.checksum, "published", None)
    assert jobs(engine) == [(first.id, "done"), (second.id, "done"), (first.id, "queued")]


def test_a_video_is_listed_as_not_published_and_not_queued(immich: Served, engine: Engine):
    photo = immich.fake.add_asset(immich.owner, PHOTO.read_bytes())
    video = immich.fake.add_asset(immich.owner, b"a video", name="clip.mp4", type="VIDEO")
    album = immich.fake.add_album(immich.owner, "Match", [photo, video])
    polled(immich, engine)
    share(engine, album.id)
    result = polled(immich, engine)
    assert result.not_published == {"Match": (NotPublished(video.id, VIDEO),)}
    assert VIDEO == "video: videos are not anonymized yet"
    assert set(photos(engine)) == {photo.id} and jobs(engine) == [(photo.id, "queued")]
    with session_scope(engine, read_only=True) as session:  # kept in the store, for albums list and the panel
        (summary,) = albums.summaries(session)
    assert summary.not_published == (NotPublished(video.id, VIDEO),)


def test_renamed_and_deleted_albums_follow_immich_and_two_of_one_name_stay_apart(immich: Served, engine: Engine):
    one, two = immich.fake.add_album(immich.owner, "Trip"), immich.fake.add_album(immich.owner, "Trip")
    assert polled(immich, engine).added == ["Trip", "Trip"]
    one.name = "Trip to Rome"
    del immich.fake.albums[two.id]
    result = polled(immich, engine)
    assert (result.renamed, result.removed) == ([("Trip", "Trip to Rome")], ["Trip"])
    rows = {r[1]: r for r in stored_albums(engine)}
    assert rows[one.id][4] == "Trip to Rome" and rows[one.id][6] is None
    assert rows[two.id][6] is not None  # removed, its row kept
    immich.fake.albums[two.id] = two
    polled(immich, engine)
    assert {r[1]: r[6] for r in stored_albums(engine)} == {one.id: None, two.id: None}


def test_the_folder_rescan_leaves_immich_albums_alone(immich: Served, engine: Engine, library: Path):
    album = immich.fake.add_album(immich.owner, "Family")
    polled(immich, engine)
    with session_scope(engine) as session:
        assert albums.sync(session, [(library, "Family")], share_new=False) == ["Family"]
    assert [(r[0], r[6]) for r in stored_albums(engine)] == [("immich", None), ("folder", None)]
    share(engine, album.id)  # a shared folder album of the same name would not stop it: it publishes elsewhere


def test_a_refused_source_key_raises_the_permission_error_and_changes_nothing(immich: Served, engine: Engine,
                                                                               holidays):
    album, first, second = holidays
    before = (photos(engine), jobs(engine), stored_albums(engine))
    with pytest.raises(ImmichPermissionError, match="401") as refused:
        polled(immich, engine, key="not-a-key")
    assert refused.value.permission == "album.read" and "not-a-key" not in str(refused.value)
    without_assets = immich.fake.add_key(immich.owner, SOURCE_PERMISSIONS - {"asset.read"})
    with pytest.raises(ImmichPermissionError, match="lacks the permission asset.read"):
        polled(immich, engine, key=without_assets)  # the album was listed, its assets refused: nothing recorded
    assert (photos(engine), jobs(engine), stored_albums(engine)) == before
