"""``anon-plugin watch`` / ``serve``: the daemon; ``anon-plugin demo``: the daemon on a bundled example album."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click

from . import settings
from .admin import THREADS, panel_server

LOG_FORMAT = click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
                          help="One line per publish and per failure, for people or for machines.")
DEMO_USER = "admin"  # the demo's panel user; its password is new on every demo --keep-running


def _service(ctx: click.Context, s=None):
    from ..daemon.service import Service

    return Service(s or settings(ctx))


@click.command("watch")
@LOG_FORMAT
@click.pass_context
def watch_command(ctx: click.Context, log_format: str) -> None:
    """Run the daemon: watch the library roots, publish public copies of shared albums.

    SIGTERM or SIGINT: stop claiming work, finish the photos in hand, exit 0.
    """
    from .. import logs

    logs.setup(log_format)
    service = _service(ctx)
    service.run()


@click.command("serve")
@LOG_FORMAT
@THREADS
@click.pass_context
def serve_command(ctx: click.Context, log_format: str, threads: int) -> None:
    """Run the daemon (and the admin panel) in one process.

    The daemon's watcher and workers run on background threads, the panel
    (waitress, on [admin] bind, default 127.0.0.1:8470) on the main one.

    SIGTERM or SIGINT: the panel stops, the workers finish the photos in hand, exit 0.
    """
    from .. import logs

    logs.setup(log_format)
    s = settings(ctx)
    service = _service(ctx, s)
    server = panel_server(s, threads, service)  # before the daemon starts: a signal from now on stops both
    service.start()
    try:
        click.echo(f"anon-plugin: admin panel on {server.url}", err=True)
        server.run()
    finally:
        service.stop()


def _demo_library(folder: Path) -> Path:
    """A library with one album, "family": the bundled public-domain portrait as a JPEG carrying
    camera EXIF with GPS, a serial number and an owner (what a phone upload carries), and as a PNG."""
    import io

    import piexif
    from PIL import Image

    from ..errors import InputError
    from ..resources import shipped_dir

    examples = shipped_dir("examples", "astronaut.png")
    if examples is None:
        raise InputError("the bundled example photos are not installed")
    album = folder / "library" / "family"
    (album / "2024").mkdir(parents=True, exist_ok=True)
    image = Image.open(examples / "astronaut.png").convert("RGB")
    exif = piexif.dump({
        "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"EOS 5D",
                piexif.ImageIFD.Artist: b"Jane Doe", piexif.ImageIFD.HostComputer: b"jane-laptop"},
        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:06:01 10:00:00", piexif.ExifIFD.BodySerialNumber: b"0123456",
                 piexif.ExifIFD.CameraOwnerName: b"Jane Doe"},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2964, 100)),
                piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: ((2, 1), (17, 1), (4020, 100))},
    })
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif)
    (album / "2024" / "astronaut.jpg").write_bytes(buffer.getvalue())
    shutil.copyfile(examples / "astronaut.png", album / "astronaut.png")
    return folder / "library"


@click.command("demo")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("anon-demo"),
              show_default=True, help="Where the demo library, public root and data folder are made.")
@click.option("--keep-running", is_flag=True,
              help="After the copies are published, keep the daemon running and serve the admin panel beside it.")
@LOG_FORMAT
@click.pass_context
def demo_command(ctx: click.Context, folder: Path, keep_running: bool, log_format: str) -> None:
    """Run the daemon on a demo album made from the bundled example photo, then say what it published.

    The demo library (the portrait as a JPEG carrying GPS, a serial number and
    an owner, and as a PNG) is built under --dir; its album is shared and the
    daemon runs until the public copies are published. With --keep-running the
    daemon goes on watching and the admin panel is served on [admin] bind
    (ANON_ADMIN_BIND, default 127.0.0.1:8470), where the demo's user admin signs
    in with the password printed then; SIGTERM or SIGINT stops both.
    """
    from .. import albums, logs, provenance
    from ..config import load_settings
    from ..library.ignore import PathFilter
    from ..store import migrate
    from ..store.db import session_scope

    logs.setup(log_format)
    folder = folder.resolve()
    library = _demo_library(folder)
    (folder / "public").mkdir(exist_ok=True)
    env = {**_machine_settings(), "ANON_DATA_DIR": str(folder / "data"), "ANON_LIBRARY_ROOTS": str(library),
           "ANON_PUBLIC_ROOT": str(folder / "public"), "ANON_WATCH_STABILITY_DELAY": "1"}
    s = load_settings(None, environ=env)
    migrate.upgrade(s.database_url)
    service = _service(ctx, s)
    with session_scope(service.engine) as session:
        albums.sync(session, [(library, "family")], share_new=False)
        album_id = albums.find(session, "family").id
    albums.share_album(service.engine, album_id, PathFilter(s.watch.ignore), by="demo")
    service.start()
    try:
        while True:
            with session_scope(service.engine) as session:
                (summary,) = albums.summaries(session, album_id)
            if summary.pending == 0:
                break
            time.sleep(0.5)
        with session_scope(service.engine) as session:
            for photo in provenance.photos_of(session, album_id):
                record = provenance.record(session, photo)
                latest = record["outputs"][0] if record["outputs"] else None
                if latest is None:
                    click.echo(f"{record['original']}: {record['state']} ({record['reason']})")
                    continue
                click.echo(f"{record['original']}\n  -> {latest['public_path']} ({latest['status']}, "
                           f"{len(latest['faces'])} face(s) regenerated, policy version {latest['policy']['version']})")
                click.echo(f"  removed metadata: {', '.join(latest['removed_tags']) or 'none'}")
        click.echo(f"\nanon-plugin: demo under {folder}; the full record of a copy: "
                   f"ANON_DATA_DIR={folder / 'data'} anon-plugin provenance PATH", err=True)
        if keep_running:
            server = panel_server(s, service=service)
            password = _demo_account(service.engine)
            click.echo(f"anon-plugin: still watching; admin panel on {server.url}, sign in as {DEMO_USER} with "
                       f"password {password} (SIGTERM or Ctrl-C stops)", err=True)
            server.run()
    finally:
        service.stop()


def _machine_settings() -> dict[str, str]:
    """The environment's [inference] and [admin] settings (the device, the panel's bind): the demo's store and
    folders are its own, never those of an install that the same shell may point at."""
    return {k: v for k, v in os.environ.items() if k.startswith(("ANON_INFERENCE_", "ANON_ADMIN_"))}


def _demo_account(engine) -> str:
    """A new password for the demo's panel user, made on the first demo and given a new password on every later one."""
    import secrets

    from ..admin import accounts
    from ..store import queries
    from ..store.db import session_scope

    password = secrets.token_urlsafe(12)
    with session_scope(engine) as session:
        queries.remove_user(session, DEMO_USER)
        accounts.add(session, DEMO_USER, password)
    return password
