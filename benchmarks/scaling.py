"""The celery backend against the local one: the 80 wild photos published by each.

    python benchmarks/scaling.py [--photos 80] [--threads 1] [--runs 1,2,3,4] [--repeat 1]

Four runs, each on a fresh store and an empty public root, the album under the
default policy (generate, medium, verified):
1. local backend, SQLite (today's default): ``anon-plugin watch``, 1 worker thread;
2. local backend on PostgreSQL (what the store alone costs);
3. celery backend: ``anon-plugin watch`` dispatching to 1 ``anon-plugin worker``;
4. celery backend with 2 workers.
``--repeat N`` runs them N times, interleaved, and compares the medians;
``SCALING_GAPS=1`` prints, per run, the wait between one batch's end and the
next claim. Every process runs ``--threads`` torch threads (1 by default: on this 2-core
machine, two workers of one thread each use both cores). The daemon and the
workers are started first and their models loaded; the clock runs from the
first job queued (``albums share``) to the last job done, read from the store
(jobs.created_at, jobs.finished_at). PostgreSQL and redis-server are started
by the script, on unix sockets and a free port, and removed afterwards. Run it
with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from _data import DATA

BIN = Path(sys.executable).with_name("anon-plugin")
RUNS = (("local, SQLite", "local", "sqlite", 1), ("local, PostgreSQL", "local", "postgresql", 1),
        ("celery, 1 worker", "celery", "postgresql", 1), ("celery, 2 workers", "celery", "postgresql", 2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


class Servers:
    """A throwaway PostgreSQL cluster (unix socket) and a redis-server (no persistence)."""

    def __init__(self, folder: Path):
        self.folder = folder
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found or shutil.which("redis-server") is None:
            sys.exit("needs PostgreSQL (/usr/lib/postgresql/*/bin) and redis-server")
        self.pg_bin = Path(found[-1]).parent
        (folder / "pg").mkdir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(folder / "pg", pw.pw_uid, pw.pw_gid)
        subprocess.run(_as_postgres(str(self.pg_bin / "initdb"), "-D", str(folder / "pg" / "data"), "-A", "trust",
                                    "-U", "postgres", "--no-sync"), check=True, capture_output=True)
        subprocess.run(_as_postgres(str(self.pg_bin / "pg_ctl"), "-D", str(folder / "pg" / "data"), "-l",
                                    str(folder / "pg" / "log"), "-w", "-o",
                                    f"-k {folder / 'pg'} -c listen_addresses=''", "start"),
                       check=True, capture_output=True)
        self.port = _free_port()
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
                                       "--dir", str(folder)], stdout=subprocess.DEVNULL)
        self.broker_url = f"redis://127.0.0.1:{self.port}/0"

    def database(self, name: str) -> str:
        admin = sa.create_engine(f"postgresql+psycopg://postgres@/postgres?host={self.folder / 'pg'}",
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {name}"))
        admin.dispose()
        return f"postgresql+psycopg://postgres@/{name}?host={self.folder / 'pg'}"

    def close(self) -> None:
        self.redis.terminate()
        self.redis.wait(30)
        subprocess.run(_as_postgres(str(self.pg_bin / "pg_ctl"), "-D", str(self.folder / "pg" / "data"), "-m",
                                    "fast", "-w", "stop"), capture_output=True)


def _time(value: dt.datetime | str) -> dt.datetime:
    """A timestamp of the store (SQLite returns text)."""
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _wait(engine: sa.Engine, sql: str, until, what: str, processes: list[subprocess.Popen], limit: float = 3600):
    start = time.monotonic()
    while True:
        with engine.connect() as c:
            value = c.execute(sa.text(sql)).scalar()
        if until(value):
            return value
        if any(p.poll() is not None for p in processes):
            sys.exit(f"a process exited while waiting for {what}")
        if time.monotonic() - start > limit:
            sys.exit(f"gave up waiting for {what}")
        time.sleep(0.1)


def run(label: str, backend: str, store: str, workers: int, photos: list[Path], servers: Servers, work: Path,
        threads: int) -> float:
    site = work / label.replace(" ", "").replace(",", "-")
    site.mkdir(parents=True)
    library, public, data = site / "library", site / "public", site / "data"
    (library / "bench").mkdir(parents=True)
    public.mkdir()
    for photo in photos:
        shutil.copyfile(photo, library / "bench" / photo.name)
    env = {**os.environ, "ANON_DATA_DIR": str(data), "ANON_LIBRARY_ROOTS": str(library),
           "ANON_PUBLIC_ROOT": str(public), "ANON_INFERENCE_THREADS": str(threads), "ANON_INFERENCE_WORKERS": "1",
           "ANON_QUEUE_BACKEND": backend, "ANON_QUEUE_BROKER_URL": servers.broker_url}
    env.pop("ANON_CONFIG", None)
    if store == "postgresql":
        env["ANON_DATABASE_URL"] = servers.database(f"bench_{work.name.replace('-', '_')}_"
                                                    f"{site.name.replace('-', '_').lower()}")
    subprocess.run([str(BIN), "db", "upgrade"], env=env, check=True, capture_output=True)
    url = env.get("ANON_DATABASE_URL") or f"sqlite:///{data / 'anon_plugin.db'}"
    engine = sa.create_engine(url)
    logs = [open(site / f"process-{i}.log", "w") for i in range(workers + 1)]
    processes = [subprocess.Popen([str(BIN), "watch"], env=env, stdout=logs[0], stderr=logs[0])]
    if backend == "celery":
        processes += [subprocess.Popen([str(BIN), "worker"], env=env, stdout=logs[i + 1], stderr=logs[i + 1])
                      for i in range(workers)]
    try:
        # Ready: every worker has said so (models loaded; the local worker thread registers after they are).
        _wait(engine, "SELECT count(*) FROM workers WHERE stopped_at IS NULL", lambda n: n >= workers,
              "the workers", processes, 300)
        subprocess.run([str(BIN), "albums", "share", "bench"], env=env, check=True, capture_output=True)
        _wait(engine, "SELECT count(*) FROM jobs WHERE state NOT IN ('done', 'failed')", lambda n: n == 0,
              "every job", processes)
        with engine.connect() as c:
            first, last = map(_time, c.execute(sa.text("SELECT min(created_at), max(finished_at) FROM jobs")).one())
            published = c.execute(sa.text("SELECT count(*) FROM photos WHERE state = 'published'")).scalar()
            # A batch's jobs share their claim time (heartbeat_at, renewed only after lease/4 = 30 s).
            spans = [tuple(map(_time, row)) for row in c.execute(sa.text(
                "SELECT heartbeat_at, max(finished_at) FROM jobs GROUP BY heartbeat_at ORDER BY heartbeat_at"))]
        if os.environ.get("SCALING_GAPS"):
            gaps = [(spans[i + 1][0] - spans[i][1]).total_seconds() for i in range(len(spans) - 1)]
            print(f"  {len(spans)} batches; gaps between one batch's end and the next claim: "
                  f"{', '.join(f'{g:.2f}' for g in gaps)}", flush=True)
        seconds = (last - first).total_seconds()
        print(f"| {label} | {published}/{len(photos)} | {seconds:.1f} s | {len(photos) / seconds:.3f} |", flush=True)
        return seconds
    finally:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            p.wait(120)
        for log in logs:
            log.close()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", default="1,2,3,4", help="which of the four runs, e.g. 1,3")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the runs, interleaved; the ratios are then of the medians")
    args = parser.parse_args()
    photos = sorted((DATA / "wild" / "images").glob("*.jpg"))[: args.photos]
    work = Path(tempfile.mkdtemp(prefix="anon-scaling-"))
    os.chmod(work, 0o755)
    servers = Servers(work)
    try:
        print(f"{len(photos)} wild photos, default policy (generate, medium, verified), {args.threads} torch "
              f"thread(s) per process, {os.cpu_count()} cores")
        print("| backend | published | first queued to last done | photos/s |")
        print("|---|---|---|---|")
        rounds: dict[str, list[float]] = {}
        for round_ in range(args.repeat):
            for index in map(int, args.runs.split(",")):
                label, backend, store, workers = RUNS[index - 1]
                rounds.setdefault(label, []).append(
                    run(label, backend, store, workers, photos, servers, work / f"round-{round_}", args.threads))
        took = {label: statistics.median(times) for label, times in rounds.items()}
        if args.repeat > 1:
            for label, times in rounds.items():
                print(f"{label}: median {took[label]:.1f} s of {', '.join(f'{t:.1f}' for t in times)}")
        if "local, SQLite" in took and "celery, 1 worker" in took:
            print(f"celery 1 worker / local SQLite: {took['celery, 1 worker'] / took['local, SQLite']:.3f}x time")
        if "celery, 1 worker" in took and "celery, 2 workers" in took:
            print(f"2 workers speed-up over 1: {took['celery, 1 worker'] / took['celery, 2 workers']:.2f}x")
    finally:
        servers.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
