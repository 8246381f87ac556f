"""The celery backend end to end: a real Redis, a real PostgreSQL, the daemon and two ``anon-plugin worker``
processes on real photos, and what goes wrong in production done to them for real: a worker killed mid-batch,
Redis restarted (with and without persistence), a batch delivered twice, a photo that kills each worker that
takes it, a worker stopped with SIGTERM. Each time every photo must end published exactly once."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from redis_server import RedisServer
from sqlalchemy.pool import NullPool

from anon_plugin.store.tables import Job, Output, Photo, WorkerRow

ALBUM = "club"
DEADLINE = 180.0  # seconds for a scenario to settle
MAX_ATTEMPTS = 3
HOST = socket.gethostname()


def _command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("anon-plugin")), *args]


@dataclass
class Process:
    """A daemon or worker subprocess, its output in a log file of the test's folder."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    expected_exit: bool = False  # the test stopped it: its exit is no failure

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.is_file() else []
        return "\n".join(text[-lines:])


@dataclass
class Site:
    """A library with one album of real photos, a public root, the store on PostgreSQL and the broker on Redis."""

    folder: Path
    library: Path
    public: Path
    env: dict[str, str]
    db_url: str
    redis: RedisServer
    engine: sa.Engine
    processes: list[Process] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        done = subprocess.run(_command(*args), env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"anon-plugin {' '.join(args)} exited {done.returncode}: {done.stderr}"
        return done.stdout

    def start(self, *args: str) -> Process:
        """``anon-plugin ARGS`` in the background; its stdout and stderr go to a log file, shown on failure."""
        name = f"{args[0]}-{len(self.processes)}"
        log = self.folder / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(_command(*args), env=self.env, stdout=out, stderr=subprocess.STDOUT)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def worker(self) -> Process:
        return self.start("worker", "--device", "cpu")

    def workers(self) -> list[Process]:
        return [p for p in self.processes if p.name.startswith("worker-")]

    def stop_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.expected_exit = True
                process.popen.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.popen.wait(60)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(10)

    def report(self) -> str:
        """The store's jobs, the broker, and the tails of every log: what a failure message needs."""
        with self.engine.connect() as connection:
            jobs = connection.execute(sa.select(Job.photo_id, Job.state, Job.attempts, Job.claimed_by,
                                                Job.sent_at, Job.last_error).order_by(Job.photo_id)).all()
            photos = connection.execute(sa.select(Photo.id, Photo.relative_path, Photo.state, Photo.reason)
                                        .order_by(Photo.id)).all()
        parts = ["jobs: " + "\n  ".join(map(str, jobs)), "photos: " + "\n  ".join(map(str, photos))]
        for process in self.processes:
            parts.append(f"--- {process.name} (pid {process.pid}, exit {process.popen.poll()}):\n{process.tail()}")
        parts.append(f"--- redis:\n{self.redis.tail(10)}")
        return "\n".join(parts)

    def wait_for(self, condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
        """Until ``condition()``; fails after ``deadline`` s, or as soon as a process dies unasked."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if condition():
                return
            for process in self.processes:
                if process.popen.poll() is not None and not process.expected_exit:
                    raise AssertionError(f"{process.name} exited ({process.popen.returncode}) before {what}\n"
                                         + self.report())
            time.sleep(0.05)
        raise AssertionError(f"waited {deadline:g} s for {what}\n" + self.report())

    def jobs(self) -> list[tuple[int, int, str, int, str | None]]:
        """(job id, photo id, state, attempts, claimed_by) of every job."""
        with self.engine.connect() as connection:
            return list(connection.execute(sa.select(Job.id, Job.photo_id, Job.state, Job.attempts, Job.claimed_by)
                                           .order_by(Job.id)).tuples())

    def held_by(self, process: Process) -> list[int]:
        """The ids of the jobs running under this worker process now (its name is host:pid:0)."""
        return [j[0] for j in self.jobs() if j[2] == "running" and j[4] == f"{HOST}:{process.pid}:0"]

    def settled(self) -> bool:
        """Every job done or failed (nothing queued or running), and at least one job."""
        jobs = self.jobs()
        return bool(jobs) and all(j[2] in ("done", "failed") for j in jobs)

    def photo_ids(self) -> list[int]:
        with self.engine.connect() as connection:
            return list(connection.scalars(sa.select(Photo.id).order_by(Photo.id)))


def _holder(site: Site, among: list[Process]) -> tuple[Process, list[int]] | None:
    """The first of these live workers that holds running jobs, with their ids."""
    for process in among:
        if process.popen.poll() is None and (held := site.held_by(process)):
            return process, held
    return None


def _await_holder(site: Site, among: list[Process]) -> tuple[Process, list[int]]:
    """Wait for one of these workers to hold a batch: that worker and the ids of the jobs in its hands."""
    found: list[tuple[Process, list[int]]] = []

    def holding() -> bool:
        if (holder := _holder(site, among)) is not None:
            found.append(holder)
        return bool(found)

    site.wait_for(holding, "a worker holding a batch")
    return found[0]


@pytest.fixture
def make_site(tmp_path: Path, wild_photos: list[Path], postgres_db: str, redis_server: RedisServer
              ) -> Iterator[Callable[..., Site]]:
    """``make_site(photos, method)``: the album of ``photos`` real photos, shared (its jobs queued), its policy's
    fill ``method`` (None: the default policy); nothing started yet. Every process is stopped after the test."""
    sites: list[Site] = []

    def make(photos: int = 8, method: str | None = "blur") -> Site:
        library, public, data = tmp_path / "library", tmp_path / "public", tmp_path / "data"
        (library / ALBUM).mkdir(parents=True)
        public.mkdir()
        for i in range(photos):
            shutil.copy(wild_photos[i], library / ALBUM / f"{i:02}.jpg")
        env = {**os.environ, "ANON_DATA_DIR": str(data), "ANON_LIBRARY_ROOTS": str(library),
               "ANON_PUBLIC_ROOT": str(public), "ANON_DATABASE_URL": postgres_db,
               "ANON_QUEUE_BACKEND": "celery", "ANON_QUEUE_BROKER_URL": redis_server.url,
               "ANON_INFERENCE_THREADS": "1", "ANON_INFERENCE_MAX_BATCH": "4", "ANON_INFERENCE_DEVICE": "cpu",
               "ANON_QUEUE_LEASE": "4", "ANON_QUEUE_VISIBILITY_TIMEOUT": "30", "ANON_QUEUE_TIME_LIMIT": "25",
               "ANON_QUEUE_RESEND_AFTER": "5", "ANON_QUEUE_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
               "ANON_WATCH_STABILITY_DELAY": "0.5"}
        env.pop("ANON_CONFIG", None)
        site = Site(tmp_path, library, public, env, postgres_db, redis_server,
                    sa.create_engine(postgres_db, poolclass=NullPool))
        sites.append(site)
        site.cli("db", "upgrade")
        if method is not None:
            site.cli("policy", "set", ALBUM, f"method={method}")
        site.cli("albums", "share", ALBUM)
        assert len(site.jobs()) == photos
        return site

    yield make
    for site in sites:
        site.stop_all()
        site.engine.dispose()


def assert_published_once(site: Site, except_photos: frozenset[int] = frozenset()) -> None:
    """Every photo (but ``except_photos``) published, by exactly one output, one file each in the public root
    with that output's sha256, nothing else there (no temporary file), and its job done."""
    with site.engine.connect() as connection:
        photos = {p.id: p for p in connection.execute(sa.select(Photo.id, Photo.state, Photo.reason))}
        outputs = connection.execute(sa.select(Output.photo_id, Output.status, Output.public_path,
                                               Output.public_sha256)).all()
        jobs = connection.execute(sa.select(Job.photo_id, Job.state)).all()
    expected = sorted(set(photos) - except_photos)
    assert {i: photos[i].state for i in expected} == {i: "published" for i in expected}, site.report()
    assert sorted(o.photo_id for o in outputs) == expected, "not exactly one output per photo\n" + site.report()
    assert {o.status for o in outputs} == {"published"}
    files = sorted(p for p in site.public.rglob("*") if p.is_file())
    assert files == sorted(Path(o.public_path) for o in outputs), "extra, missing or temporary files"
    for output in outputs:
        assert hashlib.sha256(Path(output.public_path).read_bytes()).hexdigest() == output.public_sha256
    assert sorted(j.photo_id for j in jobs if j.state == "done") == expected, site.report()


def _drained(site: Site) -> bool:
    """No message waits in Redis, none is held unacknowledged: nothing will be delivered again."""
    from anon_plugin.jobs import broker

    state = broker.state(site.redis.url)
    return (state.reachable, state.waiting, state.unacked) == (True, 0, 0)


def test_kill_9_of_a_worker_mid_batch_publishes_every_photo_once(make_site):
    site = make_site(photos=8)
    site.start("watch")
    workers = [site.worker(), site.worker()]
    victim, held = _await_holder(site, workers)
    victim.expected_exit = True
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.popen.wait(30) == -signal.SIGKILL
    site.wait_for(site.settled, "every job done after the kill")
    assert_published_once(site)
    attempts = {j[0]: j[3] for j in site.jobs()}
    assert all(attempts[j] >= 2 for j in held), "the killed batch's jobs were not run again"


@pytest.mark.parametrize("redis_server", [False, True], ids=["no-persistence", "append-only"], indirect=True)
def test_a_redis_restart_mid_run_loses_nothing(make_site, redis_server):
    from anon_plugin.jobs import broker

    site = make_site(photos=12)  # three messages: one in each worker's hands, one waiting in Redis
    site.start("watch")
    workers = [site.worker(), site.worker()]
    site.wait_for(lambda: all(site.held_by(w) for w in workers), "both workers holding a batch")
    assert broker.state(redis_server.url).waiting, "no message waits in Redis: the restart would lose nothing"
    redis_server.restart()
    assert broker.state(redis_server.url).append_only is redis_server.append_only
    assert [j for j in site.jobs() if j[2] == "queued"], "nothing left for after the restart\n" + site.report()
    site.wait_for(site.settled, "every job done after the Redis restart")
    assert_published_once(site)
    assert redis_server.starts == 2
    site.wait_for(lambda: _consumers(redis_server.url) == len(workers), "both workers waiting for batches again")


def _consumers(url: str) -> int:
    """How many connections to Redis wait for a message now (a Celery worker polls its queue with BRPOP)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return sum(1 for c in client.client_list() if c.get("cmd") == "brpop")
    finally:
        client.close()


def test_a_batch_delivered_twice_publishes_each_photo_once(make_site):
    from anon_plugin.config import QueueSettings
    from anon_plugin.jobs import broker

    site = make_site(photos=8)  # queued by the share, not sent: no daemon runs in this test
    app = broker.make_app(QueueSettings(backend="celery", broker_url=site.redis.url))
    ids = site.photo_ids()
    for batch in (ids[:4], ids[:4], ids[4:], ids[4:]):  # the same batch twice in a row: both workers take it
        broker.send(app, batch)
    site.worker()
    site.worker()
    site.wait_for(site.settled, "every job done")
    assert_published_once(site)
    site.wait_for(lambda: _drained(site), "the duplicates taken from Redis and acknowledged")
    with site.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.sum(Job.attempts))) == len(ids), "a photo was claimed twice"


def test_a_photo_that_kills_its_worker_fails_after_the_attempt_cap(make_site):
    site = make_site(photos=8, method=None)  # the default policy, as installed
    killer = site.photo_ids()[2]
    stop, killed, replaced = threading.Event(), [], set()

    def supervise() -> None:
        """Kill whichever worker runs the killer photo; start a killed worker again, as compose's restart would."""
        while not stop.is_set():
            for process in site.workers():
                if process.expected_exit and process.popen.poll() is not None and process.name not in replaced:
                    replaced.add(process.name)
                    site.worker()
            for _, photo_id, state, attempts, claimed_by in site.jobs():
                if photo_id == killer and state == "running":
                    for process in site.workers():
                        if claimed_by == f"{HOST}:{process.pid}:0" and not process.expected_exit:
                            process.expected_exit = True
                            os.kill(process.pid, signal.SIGKILL)
                            killed.append(attempts)
            stop.wait(0.02)

    site.start("watch")
    site.worker()
    site.worker()
    thread = threading.Thread(target=supervise, daemon=True)
    thread.start()
    try:
        site.wait_for(site.settled, "every job done or failed")
    finally:
        stop.set()
        thread.join(10)
    assert killed == list(range(1, MAX_ATTEMPTS + 1)), f"killed during attempts {killed}\n" + site.report()
    with site.engine.connect() as connection:
        job = connection.execute(sa.select(Job.state, Job.attempts, Job.last_error).where(Job.photo_id == killer)).one()
        photo = connection.execute(sa.select(Photo.state, Photo.reason).where(Photo.id == killer)).one()
        killer_outputs = connection.scalar(sa.select(sa.func.count()).where(Output.photo_id == killer))
    assert (job.state, job.attempts) == ("failed", MAX_ATTEMPTS), site.report()
    assert photo.state == "failed" and f"worker stopped during each of its {MAX_ATTEMPTS} attempts" in photo.reason
    assert job.last_error == photo.reason and killer_outputs == 0
    assert_published_once(site, except_photos=frozenset({killer}))


def test_sigterm_drains_the_batch_in_hand_then_exits_0(make_site):
    site = make_site(photos=12)  # three messages: the third for the worker that goes on
    site.start("watch")
    workers = [site.worker(), site.worker()]
    stopped, held = _await_holder(site, workers)
    other = next(w for w in workers if w is not stopped)
    stopped.expected_exit = True
    stopped.popen.send_signal(signal.SIGTERM)
    assert stopped.popen.wait(DEADLINE) == 0, stopped.tail()
    states = {j[0]: (j[2], j[3]) for j in site.jobs()}
    assert {j: states[j] for j in held} == {j: ("done", 1) for j in held}, "the batch in hand was not finished first"
    site.wait_for(site.settled, "every job done")
    assert_published_once(site)
    site.wait_for(lambda: _drained(site), "every message acknowledged, the stopped worker's too")
    with site.engine.connect() as connection:
        rows = {pid: (stopped_at, batches, photos) for pid, stopped_at, batches, photos in connection.execute(
            sa.select(WorkerRow.pid, WorkerRow.stopped_at, WorkerRow.batches, WorkerRow.photos))}
    assert rows[stopped.pid][0] is not None, "the stopped worker's row does not say it stopped"
    assert rows[stopped.pid][1:] == (1, len(held)), "the stopped worker took another batch after SIGTERM"
    assert rows[other.pid][0] is None and rows[other.pid][2] == 12 - len(held), rows


def _refused(site: Site, command: str, **env: str) -> str:
    """Run ``anon-plugin COMMAND``, expected to refuse at once: exit 1 or 2, one line on stderr; returns it."""
    done = subprocess.run(_command(command), env={**site.env, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode in (1, 2), (command, env, done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, (command, env, done.stderr)
    return lines[0]


def test_a_worker_refuses_paths_it_cannot_see_and_celery_refuses_sqlite(make_site, tmp_path):
    site = make_site(photos=1)
    assert "nowhere" in _refused(site, "worker", ANON_PUBLIC_ROOT=str(tmp_path / "nowhere" / "public"))
    assert "gone" in _refused(site, "worker", ANON_LIBRARY_ROOTS=str(tmp_path / "gone"))
    album = site.library / ALBUM
    album.rename(site.library / "elsewhere")  # the share mounted at another path than on the daemon's machine
    try:
        assert f"album folder {album} cannot be read here" in _refused(site, "worker")
    finally:
        (site.library / "elsewhere").rename(album)
    with site.engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(WorkerRow)) == 0, "a refused worker registered"
    sqlite = f"sqlite:///{tmp_path / 'anon.db'}"
    for command in ("watch", "worker"):
        refusal = _refused(site, command, ANON_DATABASE_URL=sqlite)
        assert "the celery backend needs database_url on PostgreSQL" in refusal


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_worker_refuses_a_public_root_it_cannot_write(make_site):
    site = make_site(photos=1)
    site.public.chmod(0o555)
    try:
        assert f"public root {site.public} cannot be written here" in _refused(site, "worker")
    finally:
        site.public.chmod(0o755)
