"""The Immich connector against the fake Immich: HTTP calls and seconds per published photo.

    python benchmarks/immich_fake.py [--photos 10] [--poll-interval 1.0]

Starts the daemon (``Service``, in process, models loaded first and not
timed) with the fake Immich of the tests over real HTTP. For each policy
(blur without verification, then the default), an album of ``--photos`` wild
photos of ../shared/data/wild is made in the fake and shared under it; timed
from the share to the last photo published, with the calls the fake logged
meanwhile, by kind. The polls' ``GET /api/albums`` are counted apart (they
depend on the poll interval, not on the photos). Run it with the machine
otherwise idle.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from _data import DATA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "connectors" / "immich"))
from fake import PUBLIC_PERMISSIONS, SOURCE_PERMISSIONS, FakeImmich  # noqa: E402

from anon_plugin import albums, policies  # noqa: E402
from anon_plugin.config import load_settings  # noqa: E402
from anon_plugin.daemon.service import Service  # noqa: E402
from anon_plugin.store import migrate  # noqa: E402
from anon_plugin.store.db import session_scope  # noqa: E402
from anon_plugin.store.tables import Album, Photo  # noqa: E402

POLICIES = {"blur, verify=false": policies.DEFAULT.with_changes(method="blur", verify=False),
            "default": policies.DEFAULT}


def _kind(call: str) -> str:
    """A call without its ids: ``GET /api/assets/{id}/original``."""
    method, path = call.split(" ", 1)
    parts = ["{id}" if len(p) == 36 and p.count("-") == 4 else p for p in path.split("/")]
    return f"{method} {'/'.join(parts)}"


def _done(service: Service, album_id: int) -> int:
    with session_scope(service.engine, read_only=True) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Photo).where(
            Photo.album_id == album_id, Photo.state.in_(("published", "held", "failed")))) or 0


def run(service: Service, fake: FakeImmich, owner, name: str, photos: list[Path], policy) -> None:
    assets = [fake.add_asset(owner, p.read_bytes()) for p in photos]
    album = fake.add_album(owner, name, assets)
    while True:  # the poller lists it
        with session_scope(service.engine, read_only=True) as session:
            album_id = session.scalar(sa.select(Album.id).where(Album.external_id == album.id))
        if album_id is not None:
            break
        time.sleep(0.05)
    first = len(fake.calls)
    started = time.perf_counter()
    with session_scope(service.engine) as session:
        found = session.get_one(Album, album_id)
        albums.share(session, found, (), by="benchmark")
        policies.save(session, found.id, policy, "benchmark")
    while _done(service, album_id) < len(photos):
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    time.sleep(1.0)  # the link is made after the batch
    calls = Counter(_kind(c) for c in fake.calls[first:])
    polls = calls.pop("GET /api/albums", 0)
    publishing = sum(calls.values())
    print(f"\n{name}: {len(photos)} photos in {seconds:.1f} s = {seconds / len(photos):.2f} s per photo "
          f"(poll interval included)")
    print(f"  {publishing} calls besides {polls} album listings = {publishing / len(photos):.1f} per photo:")
    for kind, count in sorted(calls.items(), key=lambda kv: -kv[1]):
        print(f"    {count:4} {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    photos = sorted((DATA / "wild" / "images").glob("*.jpg"))[:args.photos]
    fake = FakeImmich()
    owner, public = fake.add_user("Owner"), fake.add_user("Public")
    with tempfile.TemporaryDirectory() as tmp, fake.serve() as url:
        root = Path(tmp)
        keys = {}
        for who, user, permissions in (("source", owner, SOURCE_PERMISSIONS), ("public", public, PUBLIC_PERMISSIONS)):
            keys[who] = root / f"{who}.key"
            keys[who].write_text(fake.add_key(user, permissions))
            keys[who].chmod(0o600)
        for folder in ("library", "public", "data"):
            (root / folder).mkdir()
        settings = load_settings(None, environ={
            "ANON_DATA_DIR": str(root / "data"), "ANON_LIBRARY_ROOTS": str(root / "library"),
            "ANON_PUBLIC_ROOT": str(root / "public"), "ANON_IMMICH_URL": url,
            "ANON_IMMICH_SOURCE_KEY_FILE": str(keys["source"]), "ANON_IMMICH_PUBLIC_KEY_FILE": str(keys["public"]),
            "ANON_IMMICH_POLL_INTERVAL": str(args.poll_interval)})
        migrate.upgrade(settings.database_url)
        service = Service(settings)
        started = time.perf_counter()
        service.start()
        print(f"daemon started in {time.perf_counter() - started:.1f} s on {service.device} "
              f"({settings.inference.workers} worker(s), {settings.inference.threads} thread(s))")
        try:
            for name, policy in POLICIES.items():
                run(service, fake, owner, name, photos, policy)
        finally:
            service.stop()
        if fake.errors:
            raise SystemExit("Immich's spec broken:\n" + "\n".join(fake.errors))


if __name__ == "__main__":
    main()
