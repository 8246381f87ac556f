"""The worker end to end on a real library folder, a real SQLite store and real photos."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from anon_plugin import albums, photos, policies
from anon_plugin.library.ignore import PathFilter
from anon_plugin.library.walk import scan_album
from anon_plugin.imageio import read_picture
from anon_plugin.inference import batch, fill
from anon_plugin.jobs import queue
from anon_plugin.jobs import worker as worker_module
from anon_plugin.jobs.worker import PAUSED, Worker
from anon_plugin.store import migrate
from anon_plugin.store.db import default_url, engine_for, session_scope
from anon_plugin.store.tables import Face, Job, Output, Photo, PolicyVersion


@pytest.fixture
def site(tmp_path, wild_photos):
    """A library with one album of three real photos (one with two faces and a small cartoon face) and two bad files."""
    library, public = tmp_path / "library", tmp_path / "public"
    album = library / "family"
    (album / "2024").mkdir(parents=True)
    shutil.copy(wild_photos[0], album / "a.jpg")
    shutil.copy(wild_photos[74], album / "2024" / "two.jpg")
    Image.open(wild_photos[7]).save(album / "c.png")
    (album / "notes.jpg").write_text("not a photo")
    (album / "broken.jpg").write_bytes(Path(wild_photos[1]).read_bytes()[:3000])
    public.mkdir()
    url = default_url(tmp_path)
    migrate.upgrade(url)
    engine = engine_for(url)
    with session_scope(engine) as session:
        albums.sync(session, [(library, "family")], share_new=False)
    yield library, public, engine
    engine.dispose()


def _share(library, engine, name="family"):
    with session_scope(engine) as session:
        album = albums.find(session, name)
        return albums.share(session, album, scan_album(library, name, PathFilter()), by="admin")


def _set_policy(engine, policy: policies.Policy, republish: bool = False) -> None:
    with session_scope(engine) as session:
        album = albums.find(session, "family")
        policies.save(session, album.id, policy, "admin")
        if republish:
            albums.republish(session, album, by="admin")


def _drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_sharing_publishes_every_photo_with_provenance(site):
    library, public, engine = site
    assert _share(library, engine) == 5
    _drain(Worker(engine, public, "w1", max_batch=4))
    with session_scope(engine) as session:
        states = {p.relative_path: (p.state, p.reason) for p in session.scalars(sa.select(Photo))}
        outputs = session.scalars(sa.select(Output)).all()
        faces = session.scalars(sa.select(Face)).all()
        depth = queue.depth(session)
    assert {k: v[0] for k, v in states.items()} == {
        "a.jpg": "published", "2024/two.jpg": "published", "c.png": "published",
        "notes.jpg": "failed", "broken.jpg": "failed"}
    assert "not an image" in states["notes.jpg"][1] and "corrupt" in states["broken.jpg"][1]
    assert depth == {"queued": 0, "running": 0, "done": 3, "failed": 2}
    assert len(outputs) == 3 and len(faces) == 5
    for face in faces:  # verified (the default policy): the steps and the final scores are provenance
        assert face.steps[0] == "generate" and set(face.similarity) == {"sface_cosine", "facenet_cosine"}
        assert not face.covered or face.error.startswith("verify: still too close")  # never a failed stage
    for output in outputs:
        path = Path(output.public_path)
        assert path.is_file() and path.is_relative_to(public / "family")
        picture = read_picture(path)
        assert picture.sha256 == output.public_sha256
        assert output.status == "published" and output.device == "cpu" and "generator" in output.model_sha256s
    # Originals are never written; the public tree mirrors the album; nothing half-written is left.
    assert sorted(p.relative_to(public).as_posix() for p in public.rglob("*") if p.is_file()) == [
        "family/2024/two.jpg", "family/a.jpg", "family/c.png"]
    original = read_picture(library / "family" / "a.jpg")
    copy = read_picture(public / "family" / "a.jpg")
    assert original.rgb.shape == copy.rgb.shape and not np.array_equal(original.rgb, copy.rgb)


def test_same_content_under_the_same_policy_is_not_processed_twice(site):
    library, public, engine = site
    _share(library, engine)
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        album = albums.find(session, "family")
        assert albums.republish(session, album, by="admin") == 5
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Output)) == 3


def test_a_touched_photo_is_published_again_only_when_its_copy_is_gone(site):
    library, public, engine = site
    _share(library, engine)
    _drain(Worker(engine, public, "w1"))
    copy = public / "family" / "a.jpg"
    published = copy.read_bytes()

    def touch_and_rescan(*names: str) -> dict[str, tuple[str, str | None]]:
        for name in names:
            os.utime(library / "family" / name)  # a new mtime, the same bytes: a copy, a sync, a touch
        with session_scope(engine) as session:
            album = albums.find(session, "family")
            found = {f.path: f for f in scan_album(library, "family", PathFilter())}
            assert all(photos.seen(session, album, found[name]) for name in names)
            assert {p.relative_path: p.state for p in session.scalars(sa.select(Photo))}["a.jpg"] == "pending"
        _drain(Worker(engine, public, "w1"))
        with session_scope(engine) as session:
            return {p.relative_path: (p.state, p.sha256) for p in session.scalars(sa.select(Photo))}

    # Its copy is there: nothing is rendered, the photo is published again, with its content hash.
    states = touch_and_rescan("a.jpg", "c.png")
    assert states["a.jpg"] == ("published", read_picture(library / "family" / "a.jpg").sha256)
    assert states["c.png"][0] == "published"
    with session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Output)) == 3
    assert copy.read_bytes() == published
    # Its copy was deleted behind our back: it is written again, and the old record superseded.
    copy.unlink()
    assert touch_and_rescan("a.jpg")["a.jpg"][0] == "published"
    assert copy.read_bytes() == published  # the same seed, policy and engine: the same bytes
    with session_scope(engine) as session:
        rows = session.scalars(sa.select(Output).where(Output.public_path == str(copy)).order_by(Output.id)).all()
    assert [o.status for o in rows] == ["superseded", "published"]


def test_photos_that_came_while_publishing_was_off_are_published_when_it_is_on_again(site):
    library, public, engine = site
    fast = policies.DEFAULT.with_changes(method="blur", verify=False)
    _set_policy(engine, fast.with_changes(enabled=False))
    assert _share(library, engine) == 5
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        assert {(p.state, p.reason) for p in session.scalars(sa.select(Photo))} == {("pending", PAUSED)}
        assert session.scalar(sa.select(sa.func.count()).select_from(Output)) == 0
        album = albums.find(session, "family")
        still_off = fast.with_changes(enabled=False, strength="large")
        assert albums.set_policy(session, album, still_off, "admin") == (2, 0)
        assert albums.set_policy(session, album, fast, "admin") == (3, 5)
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        states = sorted(p.state for p in session.scalars(sa.select(Photo)))
    assert states == ["failed", "failed", "published", "published", "published"]


def test_a_policy_change_supersedes_the_copies(site):
    library, public, engine = site
    _share(library, engine)
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        album = albums.find(session, "family")
        _, policy = policies.current(session, album.id)
        assert policies.save(session, album.id, policy.with_changes(method="blur", output_format="jpeg"), "admin") == 2
        albums.republish(session, album, by="admin")
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        rows = session.scalars(sa.select(Output).order_by(Output.id)).all()
    old, new = rows[:3], rows[3:]
    assert [o.status for o in old] == ["superseded"] * 3 and [o.status for o in new] == ["published"] * 3
    assert {o.superseded_by for o in old} == {o.id for o in new}
    # c.png is now published as c.jpg, and its old copy is gone.
    assert not (public / "family" / "c.png").exists() and (public / "family" / "c.jpg").is_file()


def test_a_face_that_cannot_be_anonymized_is_covered_or_held_as_the_policy_says(site, monkeypatch):
    library, public, engine = site

    def fails(*args, **kwargs):
        raise RuntimeError("forced failure")

    monkeypatch.setattr(fill, "fill_many", fails)
    _set_policy(engine, policies.DEFAULT.with_changes(on_face_failure="hold"))
    _share(library, engine)
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        held = session.scalars(sa.select(Output)).all()
        photo_states = {p.relative_path: p.state for p in session.scalars(sa.select(Photo))}
    assert {o.status for o in held} == {"held"} and all(o.public_sha256 is None for o in held)
    assert photo_states["a.jpg"] == "held" and not list(public.rglob("*.jpg")) and not list(public.rglob("*.png"))
    # Under "cover" the photo is published with the face pixelated, never visible.
    _set_policy(engine, policies.DEFAULT, republish=True)
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        faces = session.scalars(sa.select(Face).join(Output).where(Output.status == "published")).all()
    assert faces and all(f.covered and "forced failure" in f.error for f in faces)


def test_a_face_still_too_close_climbs_the_ladder_and_the_faces_table_keeps_its_steps(site, monkeypatch):
    """A fill that gives back the original crop hides no one: every face climbs its whole ladder. Under
    ``hold`` the photos are held back; verify=false publishes what the fill gave, with no step beyond it."""
    library, public, engine = site
    monkeypatch.setattr(fill, "fill_many", lambda method, crops, *args: (crops.copy(), [{}] * len(crops)))
    _set_policy(engine, policies.DEFAULT.with_changes(on_face_failure="hold"))
    _share(library, engine)
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        outputs = session.scalars(sa.select(Output)).all()
        faces = session.scalars(sa.select(Face)).all()
    assert {o.status for o in outputs} == {"held"} and len(faces) == 5
    assert all({"sface", "facenet"} <= set(o.model_sha256s) for o in outputs)
    for face in faces:
        assert face.covered and face.steps == ["generate", "redraw", "strength:large", "region", "covered"]
        assert face.error.startswith("verify: still too close after region")
        assert face.similarity["sface_cosine"] > 0.9 and face.threshold == 0.0
    _set_policy(engine, policies.DEFAULT.with_changes(verify=False), republish=True)
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        published = session.scalars(sa.select(Face).join(Output).where(Output.status == "published")).all()
    assert len(published) == 5
    assert all(f.steps == ["generate"] and not f.covered and f.similarity is None for f in published)


def test_unsharing_removes_the_copies_and_keeps_the_record(site):
    library, public, engine = site
    _share(library, engine)
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        album = albums.find(session, "family")
        assert albums.copies(session, album) == 3
        assert albums.unshare(session, album, public, by="admin") == 3
    assert not [p for p in public.rglob("*") if p.is_file()]
    with session_scope(engine) as session:
        assert {o.status for o in session.scalars(sa.select(Output))} == {"removed"}


@pytest.mark.parametrize("meanwhile", ["original deleted", "album unshared", "original moved", "original edited",
                                       "policy changed"])
def test_what_happens_to_a_photo_while_it_is_rendered_is_not_lost(site, monkeypatch, meanwhile):
    """The admin deletes the original, or unshares its album, while the worker renders it: the copy
    the worker then writes is taken back, and no output is recorded for it. A moved one's copy follows
    it. One edited, or whose album got a new policy and a republish, is rendered again at once."""
    library, public, engine = site
    _set_policy(engine, policies.DEFAULT.with_changes(method="blur", verify=False))
    _share(library, engine)
    render, done = batch.anonymize_batch, []

    def while_rendering(*args, **kwargs):
        results = render(*args, **kwargs)
        if done:  # the first batch only
            return results
        done.append(meanwhile)
        with session_scope(engine) as session:
            album = albums.find(session, "family")
            if meanwhile == "original deleted":
                (library / "family" / "a.jpg").unlink()
                assert photos.deleted(session, album, "a.jpg", public)
            elif meanwhile == "original edited":
                with Image.open(library / "family" / "a.jpg") as image:
                    image.rotate(180).save(library / "family" / "a.jpg", quality=80)
                found = next(f for f in scan_album(library, "family", PathFilter()) if f.path == "a.jpg")
                assert not photos.seen(session, album, found)  # the running job absorbs it
            elif meanwhile == "policy changed":
                _, policy = policies.current(session, album.id)
                policies.save(session, album.id, policy.with_changes(method="pixelate"), "admin")
                albums.republish(session, album, by="admin")
            elif meanwhile == "original moved":
                (library / "family" / "a.jpg").rename(library / "family" / "2024" / "b.jpg")
                found = next(f for f in scan_album(library, "family", PathFilter()) if f.path == "2024/b.jpg")
                assert not photos.moved(session, album, "a.jpg", found, public)
            else:
                albums.unshare(session, album, public, by="admin")
        return results

    monkeypatch.setattr(batch, "anonymize_batch", while_rendering)
    _drain(Worker(engine, public, "w1", max_batch=8))
    with session_scope(engine) as session:
        live = session.scalars(sa.select(Output).where(Output.status.in_(("published", "held")))).all()
        states = {p.relative_path: p.state for p in session.scalars(sa.select(Photo))}
        depth = queue.depth(session)
    if meanwhile == "original deleted":
        assert states["a.jpg"] == "removed" and len(live) == 2 and not (public / "family" / "a.jpg").exists()
        assert (public / "family" / "c.png").is_file()
    elif meanwhile in ("original edited", "policy changed"):
        with session_scope(engine) as session:
            a = session.scalars(sa.select(Output).join(Photo).where(Photo.relative_path == "a.jpg")
                                .order_by(Output.id)).all()
            versions = [session.get(PolicyVersion, o.policy_version_id).version for o in a]
        assert [o.status for o in a] == ["superseded", "published"] and states["a.jpg"] == "published"
        if meanwhile == "original edited":
            assert a[1].source_sha256 == read_picture(library / "family" / "a.jpg").sha256 != a[0].source_sha256
        else:
            assert versions == [1, 2]
    elif meanwhile == "original moved":
        assert states["2024/b.jpg"] == "published" and not (public / "family" / "a.jpg").exists()
        assert {Path(o.public_path).name for o in live} == {"b.jpg", "two.jpg", "c.png"}
        assert (public / "family" / "2024" / "b.jpg").is_file()
    else:
        assert live == [] and not [p for p in public.rglob("*") if p.is_file()]
        assert {states[name] for name in ("a.jpg", "2024/two.jpg", "c.png")} == {"pending"}
    assert depth["queued"] == depth["running"] == 0


def test_a_store_locked_past_its_busy_timeout_delays_the_worker_but_never_ends_it(site, monkeypatch, caplog):
    """Another writer holds SQLite's lock for longer than busy_timeout (5 s), as a long transaction
    elsewhere would: the worker's claim fails, is logged, and the worker claims again and publishes."""
    library, public, engine = site
    _set_policy(engine, policies.DEFAULT.with_changes(method="blur", verify=False))
    _share(library, engine)
    monkeypatch.setattr(worker_module, "ERROR_WAIT", 0.5)
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with session_scope(engine) as session:
            session.execute(sa.update(Photo).where(Photo.id < 0).values(reason=None))  # BEGIN IMMEDIATE taken
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert locked.wait(5)
    stop, wake = threading.Event(), threading.Event()
    worker = threading.Thread(target=Worker(engine, public, "w1").run, args=(stop, wake))
    with caplog.at_level(logging.ERROR, logger="anon_plugin.worker"):
        worker.start()
        deadline = time.monotonic() + 20
        while "the store failed" not in caplog.text:
            assert time.monotonic() < deadline, "the worker's claim never met the lock"
            time.sleep(0.2)
        release.set()
        holder.join()
        deadline = time.monotonic() + 120
        while True:
            with session_scope(engine, read_only=True) as session:
                if session.scalar(sa.select(sa.func.count()).select_from(Photo).where(Photo.state == "pending")) == 0:
                    break
            assert worker.is_alive() and time.monotonic() < deadline, "the worker stopped publishing"
            time.sleep(0.2)
        stop.set()
        wake.set()
        worker.join(30)
    assert not worker.is_alive()
    assert (public / "family" / "a.jpg").is_file()


def test_a_photo_that_cannot_be_read_for_now_is_tried_again_not_failed_for_good(site):
    """A network share that drops out while photos wait: they wait (retried after a backoff) and are
    published when the files are back, while a file that is not a photo fails at once, for good."""
    library, public, engine = site
    _set_policy(engine, policies.DEFAULT.with_changes(method="blur", verify=False))
    _share(library, engine)
    away = library.parent / "away"
    (library / "family").rename(away)  # the share is gone; no watcher here records it as deleted
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        jobs = {p.relative_path: j for j, p in session.execute(sa.select(Job, Photo).join(Photo))}
        states = {p.relative_path: (p.state, p.reason) for p in session.scalars(sa.select(Photo))}
    assert {jobs[n].state for n in ("a.jpg", "c.png", "notes.jpg")} == {"queued"}
    assert jobs["a.jpg"].last_error == "no such file" and jobs["a.jpg"].not_before is not None
    assert states["a.jpg"] == ("pending", None)
    away.rename(library / "family")  # back; the backoff ends
    with session_scope(engine) as session:
        session.execute(sa.update(Job).values(not_before=None))
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        states = {p.relative_path: p.state for p in session.scalars(sa.select(Photo))}
    assert states == {"a.jpg": "published", "2024/two.jpg": "published", "c.png": "published",
                      "notes.jpg": "failed", "broken.jpg": "failed"}


def test_two_originals_whose_copies_would_share_a_name_never_overwrite_each_other(site):
    """Under output_format = jpeg, c.png is published as c.jpg: a c.jpg beside it would overwrite
    that copy (and take it away when deleted). The second one fails, saying why; the first stays."""
    library, public, engine = site
    _set_policy(engine, policies.DEFAULT.with_changes(method="blur", verify=False, output_format="jpeg"))
    _share(library, engine)
    _drain(Worker(engine, public, "w1"))
    published = (public / "family" / "c.jpg").read_bytes()
    shutil.copy(library / "family" / "a.jpg", library / "family" / "c.jpg")
    assert _share(library, engine) == 1
    _drain(Worker(engine, public, "w1"))
    with session_scope(engine) as session:
        photo = session.scalar(sa.select(Photo).where(Photo.relative_path == "c.jpg"))
    assert (photo.state, photo.reason) == ("failed", "its public copy c.jpg is that of c.png already")
    assert (public / "family" / "c.jpg").read_bytes() == published


def test_a_batch_that_breaks_fails_its_jobs_and_their_photos_after_the_last_attempt(site, monkeypatch):
    """An unexpected error in a batch (a bug, the store gone mid-batch) never leaves its photos pending
    for good: the jobs are retried after their backoff, then fail, and so do their photos, with the reason."""
    library, public, engine = site
    _set_policy(engine, policies.DEFAULT.with_changes(method="blur", verify=False))
    (library / "family" / "notes.jpg").unlink()
    (library / "family" / "broken.jpg").unlink()
    _share(library, engine)

    def breaks(*args, **kwargs):
        raise RuntimeError("something no one expected")

    monkeypatch.setattr(worker_module, "read_picture", breaks)
    worker = Worker(engine, public, "w1", max_batch=8)
    for _ in range(queue.MAX_ATTEMPTS):
        assert worker.run_once() == 3
        with session_scope(engine) as session:
            session.execute(sa.update(Job).values(not_before=None))  # the backoff has passed
    assert worker.run_once() == 0
    with session_scope(engine) as session:
        photos_now = {(p.state, p.reason) for p in session.scalars(sa.select(Photo))}
        assert queue.depth(session)["failed"] == 3
    assert photos_now == {("failed", "RuntimeError: something no one expected")}
