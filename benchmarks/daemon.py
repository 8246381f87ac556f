"""The daemon's figures: throughput against the CLI, drop-to-publish latency, idle CPU, peak memory.

    python benchmarks/daemon.py [--photos 80] [--singles 10] [--idle 60] [--stability-delay 5]

Runs ``anon-plugin watch`` as a subprocess on a temporary library under the
default policy (generate, medium, verified):
1. throughput: the 80 wild photos of ../shared/data/wild dropped into a
   shared album at once, until every public copy is published, against
   ``anon-plugin anonymize`` of the same photos with the same method and
   strength, in the same run (both from a cold start: model loading included);
2. latency: single photos dropped one at a time (each after the previous is
   published), from the end of the copy to the public copy's record
   (the stability delay is part of it);
3. idle CPU: the daemon's CPU time over ``--idle`` seconds with no events;
4. peak RSS of the daemon (VmHWM) with every model loaded.
Run it with the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _data import DATA

BIN = Path(sys.executable).with_name("anon-plugin")


def _published(db: Path) -> int:
    with sqlite3.connect(db, timeout=10) as c:
        return c.execute("SELECT count(*) FROM photos WHERE state IN ('published', 'held', 'failed')").fetchone()[0]


def _wait_for(db: Path, count: int, limit: float = 3600) -> float:
    start = time.perf_counter()
    while _published(db) < count:
        if time.perf_counter() - start > limit:
            raise SystemExit(f"gave up waiting for {count} photos")
        time.sleep(0.02)
    return time.perf_counter()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=80)
    parser.add_argument("--singles", type=int, default=10)
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--stability-delay", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    photos = sorted((DATA / "wild" / "images").glob("*.jpg"))[: args.photos]
    work = Path(tempfile.mkdtemp(prefix="anon-bench-"))
    library, public, data = work / "library", work / "public", work / "data"
    (library / "bench").mkdir(parents=True)
    public.mkdir()
    env = {**os.environ, "ANON_DATA_DIR": str(data), "ANON_LIBRARY_ROOTS": str(library),
           "ANON_PUBLIC_ROOT": str(public), "ANON_INFERENCE_THREADS": str(args.threads),
           "ANON_WATCH_STABILITY_DELAY": str(args.stability_delay)}
    env.pop("ANON_CONFIG", None)
    db = data / "anon_plugin.db"
    try:
        # The CLI on the same photos, same method and strength, from a cold start.
        start = time.perf_counter()
        done = subprocess.run([str(BIN), "anonymize", *map(str, photos), "-o", str(work / "cli"), "--method",
                               "generate", "--strength", "medium"], env=env, capture_output=True, text=True)
        cli = time.perf_counter() - start
        if done.returncode not in (0, 1):  # 1: a face was covered, as the daemon's policy would cover it
            sys.exit(f"anon-plugin anonymize failed ({done.returncode}): {done.stderr.strip()}")

        for command in (["db", "upgrade"], ["albums", "share", "bench"]):
            subprocess.run([str(BIN), *command], env=env, check=True, capture_output=True)
        daemon = subprocess.Popen([str(BIN), "watch"], env=env, stderr=subprocess.DEVNULL)
        start = time.perf_counter()
        for photo in photos:
            shutil.copyfile(photo, library / "bench" / photo.name)
        done = _wait_for(db, len(photos))
        # What the daemon spends that the CLI does not: the stability delay before work can start.
        took = done - start

        singles = sorted((DATA / "celeba" / "images").glob("*.jpg"))[: args.singles]
        latencies = []
        for i, photo in enumerate(singles):
            target = library / "bench" / f"single-{i}.jpg"
            shutil.copyfile(photo, target)
            dropped = time.perf_counter()
            latencies.append(_wait_for(db, len(photos) + i + 1) - dropped)

        time.sleep(2)
        cpu_before, wall_before = _cpu_seconds(daemon.pid), time.perf_counter()
        time.sleep(args.idle)
        idle = (_cpu_seconds(daemon.pid) - cpu_before) / (time.perf_counter() - wall_before)
        rss = _peak_rss_mb(daemon.pid)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(120)

        p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
        print(f"{len(photos)} wild photos, policy generate/medium/verified, {args.threads} torch threads, "
              f"stability_delay {args.stability_delay} s")
        print("| figure | value |")
        print("|---|---|")
        print(f"| anon-plugin anonymize (CLI), cold start | {len(photos) / cli:.2f} photos/s ({cli:.1f} s) |")
        print(f"| daemon, photos dropped at once, cold start | {len(photos) / took:.2f} photos/s ({took:.1f} s) |")
        print(f"| daemon / CLI | {cli / took:.2f}x |")
        print(f"| drop-to-publish latency, single photos (n={len(latencies)}) | "
              f"p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s |")
        print(f"| CPU while idle ({args.idle:.0f} s, no events) | {100 * idle:.2f}% of a core |")
        print(f"| peak RSS (VmHWM) with models loaded | {rss:.0f} MB |")
        print(f"| exit code after SIGTERM | {code} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
