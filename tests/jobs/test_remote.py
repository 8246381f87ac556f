"""``anon-plugin worker``'s own checks: the paths it must see (real folders, a real store) and the time limit that
ends its process (a real child process)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis_server import RedisServer

from anon_plugin.config import Settings, load_settings
from anon_plugin.errors import WorkerError
from anon_plugin.jobs.remote import EXIT_TIME_LIMIT, check_paths
from anon_plugin.store import queries
from anon_plugin.store.db import session_scope

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path) -> Settings:
    """A library root with album club, a public root, settings naming them."""
    (tmp_path / "library" / "club").mkdir(parents=True)
    return load_settings(environ={"ANON_DATA_DIR": str(tmp_path / "data"),
                                  "ANON_LIBRARY_ROOTS": str(tmp_path / "library"),
                                  "ANON_PUBLIC_ROOT": str(tmp_path / "public")})


def _refused(settings: Settings, engine) -> str:
    with pytest.raises(WorkerError) as caught:
        check_paths(settings, engine)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _share(engine, root: Path, name: str) -> None:
    with session_scope(engine) as session:
        queries.add_album(session, str(root), name, shared=True)


def test_a_good_site_passes_and_leaves_nothing_in_the_public_root(site: Settings, engine):
    _share(engine, site.library_roots[0], "club")
    check_paths(site, engine)
    assert site.public_root is not None and list(site.public_root.iterdir()) == []


def test_a_missing_library_root_is_refused_by_name(site: Settings, engine, tmp_path: Path):
    missing = tmp_path / "elsewhere" / "library"
    settings = dataclasses.replace(site, library_roots=(*site.library_roots, missing))
    assert _refused(settings, engine) == (f"library root {missing} cannot be read here "
                                          "(is the share mounted at that path?)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a folder of mode 0500 anyway")
def test_a_public_root_that_cannot_be_written_is_refused(site: Settings, engine):
    assert site.public_root is not None
    site.public_root.chmod(0o500)
    try:
        assert _refused(site, engine) == f"public root {site.public_root} cannot be written here: Permission denied"
    finally:
        site.public_root.chmod(0o700)


def test_a_public_root_that_is_a_file_or_missing_is_refused(site: Settings, engine, tmp_path: Path):
    a_file = tmp_path / "public.txt"
    a_file.write_text("not a folder")
    assert _refused(dataclasses.replace(site, public_root=a_file), engine) == (
        f"public root {a_file} cannot be written here: Not a directory")
    missing = tmp_path / "unmounted" / "public"
    assert _refused(dataclasses.replace(site, public_root=missing), engine) == (
        f"public root {missing} cannot be written here: No such file or directory")
    assert _refused(dataclasses.replace(site, public_root=None), engine) == (
        "the settings have no public_root: a worker publishes there")


def test_an_album_folder_of_the_store_missing_here_is_refused(site: Settings, engine, tmp_path: Path):
    root = site.library_roots[0]
    with session_scope(engine) as session:  # neither shared nor present: not the worker's business
        queries.add_album(session, str(root), "unshared")
    _share(engine, root, "club")
    check_paths(site, engine)
    _share(engine, root, "gone")
    assert _refused(site, engine) == (f"album folder {root / 'gone'} cannot be read here (the store names it; is "
                                      "the share mounted at the same path as on the daemon's machine?)")


def _child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A Python child process running ``code`` with this checkout's anon_plugin."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})


CHILD = """
import logging, sys, time
logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from anon_plugin.jobs.remote import TimeLimit
with TimeLimit(0.3, "the quick batch"):
    pass
time.sleep(0.6)  # past the quick batch's limit: its timer was cancelled
print("still here", flush=True)
with TimeLimit(0.5, "the batch of photos [1, 2]"):
    time.sleep(5)
print("never", flush=True)
"""


def test_a_batch_past_its_time_limit_ends_the_process_and_one_in_time_does_not():
    child = _child(CHILD)
    assert child.returncode == EXIT_TIME_LIMIT, child.stderr
    assert child.stdout == "still here\n"
    assert ("CRITICAL anon_plugin.worker: the batch of photos [1, 2] ran past the time limit of 0.5 s; "
            "ending this worker process") in child.stderr.splitlines()
    assert "the quick batch" not in child.stderr


STALLED_CHILD = """
import logging, sys, time
logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
from anon_plugin.jobs.remote import StallGuard
guard = StallGuard(sys.argv[1], after=1.0, every=0.2)
with guard:
    with guard.busy():
        time.sleep(2)  # busy past `after`: never counted as idle
    print("busy and alive", flush=True)
    time.sleep(10)
print("never", flush=True)
"""


def test_a_worker_idle_while_messages_wait_ends_its_process_and_a_busy_one_does_not(redis_server: RedisServer):
    """The guard against a worker that stopped consuming (paperless-ngx #6260), on a real redis-server holding
    one waiting message on the worker's queue."""
    from anon_plugin.jobs import broker
    from anon_plugin.jobs.remote import EXIT_STALLED

    with redis_server.client() as client:
        client.lpush(broker.QUEUE, b"a message no worker takes")
    child = _child(STALLED_CHILD, redis_server.url)
    assert child.returncode == EXIT_STALLED, child.stderr
    assert child.stdout == "busy and alive\n"
    assert "1 message(s) wait in the broker: this worker stopped taking them" in child.stderr
