"""kill -9 in the middle of a batch, then a restart: every photo published exactly once, nothing
half-written, the database consistent, no face published visible; SIGTERM then drains and exits 0."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

PHOTOS = 12
TIMEOUT = 180.0


def _command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("anon-plugin")), *args]


def _query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=10) as connection:
        return connection.execute(sql).fetchall()


def _published(db: Path) -> int:
    return _query(db, "SELECT count(*) FROM photos WHERE state = 'published'")[0][0]


def _wait(condition, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"the daemon exited ({process.returncode}) before {what}: {process.stderr.read()}")
        time.sleep(0.1)
    raise AssertionError(f"waited {TIMEOUT} s for {what}")


def test_kill_9_during_a_batch_then_restart(tmp_path, wild_photos):
    library, public, data = tmp_path / "library", tmp_path / "public", tmp_path / "data"
    (library / "club").mkdir(parents=True)
    public.mkdir()
    for i in range(PHOTOS):
        shutil.copy(wild_photos[i], library / "club" / f"{i:02}.jpg")
    env = {**os.environ, "ANON_DATA_DIR": str(data), "ANON_LIBRARY_ROOTS": str(library),
           "ANON_PUBLIC_ROOT": str(public), "ANON_INFERENCE_MAX_BATCH": "4", "ANON_INFERENCE_THREADS": "2",
           "ANON_WATCH_STABILITY_DELAY": "0.5"}
    env.pop("ANON_CONFIG", None)
    for args in (("db", "upgrade"), ("albums", "share", "club")):
        subprocess.run(_command(*args), env=env, check=True, capture_output=True, timeout=120)
    db = data / "anon_plugin.db"

    first = subprocess.Popen(_command("watch"), env=env, stderr=subprocess.PIPE, text=True)
    _wait(lambda: _published(db) >= 1, "the first copy", first)
    first.send_signal(signal.SIGKILL)  # mid-batch: the next photos of the batch are being rendered
    first.wait(30)
    assert _published(db) < PHOTOS, "the whole album was done before the kill: the test proves nothing"

    second = subprocess.Popen(_command("watch"), env=env, stderr=subprocess.PIPE, text=True)
    _wait(lambda: _published(db) == PHOTOS, "every photo published after the restart", second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(120) == 0, second.stderr.read()

    outputs = _query(db, "SELECT photo_id, status, public_path, public_sha256 FROM outputs")
    assert sorted(o[0] for o in outputs) == sorted(set(o[0] for o in outputs)), "a photo was published twice"
    assert {o[1] for o in outputs} == {"published"} and len(outputs) == PHOTOS
    files = sorted(p for p in public.rglob("*") if p.is_file())
    assert [p.name for p in files] == [f"{i:02}.jpg" for i in range(PHOTOS)], "temporary or extra files left"
    import hashlib

    for _, _, path, sha in outputs:
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha
    assert _query(db, "PRAGMA integrity_check") == [("ok",)]
    assert _query(db, "PRAGMA foreign_key_check") == []
    assert _query(db, "SELECT state, count(*) FROM jobs GROUP BY state") == [("done", PHOTOS)]
    # No face published visible: each one was regenerated under a mask, or covered.
    faces = _query(db, "SELECT covered, mask_area FROM faces")
    assert len(faces) >= PHOTOS and all(covered or (area or 0) > 0 for covered, area in faces)
    # Originals are never written.
    for i in range(PHOTOS):
        assert (library / "club" / f"{i:02}.jpg").read_bytes() == Path(wild_photos[i]).read_bytes()
