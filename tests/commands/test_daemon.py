"""``anon-plugin demo`` and ``watch`` end to end, and the per-album ``after_publish`` hook.

demo runs in-process through CliRunner; watch runs as the installed ``anon-plugin`` in a subprocess
(signals and stderr belong to the process); the hook runs under the real worker in-process. Real
folders, real photos, a real SQLite store, real models; waits have deadlines, never bare sleeps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import piexif
import pytest
import sqlalchemy as sa
from cli_site import Site as BaseSite
from click.testing import CliRunner, Result
from PIL import Image

from anon_plugin.cli import main
from anon_plugin.config import NOT_SETTINGS
from anon_plugin.store.tables import Output, Photo

ONE_FACE, SMALL, OTHER = "000486.jpg", "003817.jpg", "001571.jpg"  # wild photos with one face each
DEADLINE = 60.0  # generous for a loaded 2-core machine; a passing run waits a few seconds
ANON_PLUGIN = Path(sys.executable).parent / "anon-plugin"


def wait_until(condition: Callable[[], object], what: str, detail: Callable[[], str] = lambda: "",
               timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; {detail()}")
        time.sleep(0.1)


@pytest.fixture
def photos(wild_photos) -> dict[str, Path]:
    return {p.name: p for p in wild_photos}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """demo and watch point the ``anon_plugin`` logger at the stderr of the moment and stop it propagating:
    put it back, or later tests (caplog, the next CliRunner) would log into a closed stream."""
    logger = logging.getLogger("anon_plugin")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


class Site(BaseSite):
    """The shared site with album family, its settings in a TOML file (as the daemon is deployed)."""

    def __init__(self, tmp_path: Path):
        super().__init__(tmp_path)
        (self.library / "family").mkdir(parents=True)
        self.config = tmp_path / "settings.toml"
        self.config.write_text('data_dir = "data"\nlibrary_roots = ["library"]\npublic_root = "public"\n'
                               "[watch]\nstability_delay = 0.3\n[inference]\ndevice = \"cpu\"\nthreads = 2\n")
        self.env = {}

    def cli(self, *args: object, input: str | None = None) -> Result:
        return super().cli("--config", self.config, *args, input=input)

    def states(self) -> dict[str, str]:
        return self.read(lambda session: dict(session.execute(sa.select(Photo.relative_path, Photo.state)).all()))


@pytest.fixture
def site(tmp_path, clean_env) -> Site:
    site = Site(tmp_path)
    assert site.ok("db", "upgrade").endswith("(head)\n")
    return site


def test_demo_publishes_the_bundled_example_and_says_what_was_removed(tmp_path, clean_env, restore_logging):
    folder = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--dir", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    library, public = folder / "library" / "family", folder / "public" / "family"
    lines = result.stdout.splitlines()
    assert lines[0] == str(library / "2024" / "astronaut.jpg")
    assert lines[1] == f"  -> {public / '2024' / 'astronaut.jpg'} (published, 1 face(s) regenerated, policy version 1)"
    assert lines[2].startswith("  removed metadata: ")
    assert set(lines[2].removeprefix("  removed metadata: ").split(", ")) >= {
        "GPSInfo", "BodySerialNumber", "Artist", "CameraOwnerName", "HostComputer"}
    assert lines[3] == str(library / "astronaut.png")
    assert lines[4] == f"  -> {public / 'astronaut.png'} (published, 1 face(s) regenerated, policy version 1)"
    assert lines[5].startswith("  removed metadata: ") and len(lines) == 6
    assert (f"anon-plugin: demo under {folder}; the full record of a copy: ANON_DATA_DIR={folder / 'data'} "
            "anon-plugin provenance PATH") in result.stderr.splitlines()

    # The files are there; the public JPEG keeps the camera but not where, whose or which one.
    for name in ("2024/astronaut.jpg", "astronaut.png"):
        assert (library / name).is_file() and (public / name).is_file()
        assert (public / name).read_bytes() != (library / name).read_bytes()
        with Image.open(library / name) as original, Image.open(public / name) as copy:
            assert copy.size == original.size and copy.format == original.format
    exif = piexif.load(str(public / "2024" / "astronaut.jpg"))
    assert exif["0th"][piexif.ImageIFD.Make] == b"Canon" and not exif["GPS"]
    assert piexif.ImageIFD.Artist not in exif["0th"] and piexif.ExifIFD.BodySerialNumber not in exif["Exif"]

    # The command the demo prints gives the record of a copy.
    record = CliRunner().invoke(main, ["provenance", str(public / "2024" / "astronaut.jpg")],
                                env={"ANON_DATA_DIR": str(folder / "data")}, catch_exceptions=False)
    assert record.exit_code == 0, record.stderr
    (output,) = json.loads(record.stdout)["outputs"]
    assert output["status"] == "published" and "GPSInfo" in output["removed_tags"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _sign_in(url: str, password: str) -> tuple[str, str]:
    """Sign in to the panel at ``url`` as admin, as a browser does: where it ended up, and that page."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    page = browser.open(f"{url}/sign-in").read().decode()
    token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)[1]
    form = urllib.parse.urlencode({"username": "admin", "password": password, "csrf_token": token}).encode()
    try:
        with browser.open(f"{url}/sign-in?next=/albums", data=form) as answer:
            return answer.url, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.url, refused.read().decode()


@contextlib.contextmanager
def _started(args: list[str], stderr_path: Path, **env: str) -> Iterator[tuple[subprocess.Popen, Callable[[], str]]]:
    """The installed anon-plugin run with ``args``, without this process's ANON_* settings (``env`` adds some),
    and what it wrote to stderr so far; killed if it still runs at the end."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ANON_") or k in NOT_SETTINGS - {"ANON_CONFIG"}},
           **env}
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([str(ANON_PLUGIN), *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=stderr, env=env)
    try:
        yield process, lambda: stderr_path.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_demo_keep_running_serves_the_panel_where_the_printed_password_signs_in(tmp_path):
    folder, port = tmp_path / "demo", _free_port()
    said = re.compile(rf"admin panel on (http://127\.0\.0\.1:{port}), sign in as admin with password (\S+) ")
    passwords: list[str] = []
    for run in range(2):  # the second run, in the same folder, gives the demo's user a new password
        with _started(["demo", "--dir", str(folder), "--keep-running"], tmp_path / f"demo-{run}.stderr",
                      ANON_ADMIN_BIND=f"127.0.0.1:{port}",
                      ANON_DATA_DIR=str(tmp_path / "elsewhere")) as (demo, log):  # the demo's data dir is its own
            wait_until(lambda: demo.poll() is not None or said.search(log()), "the panel to be served",
                       lambda: f"exit code {demo.poll()}; stderr: {log()}", timeout=4 * DEADLINE)
            url, password = said.search(log()).groups()
            passwords.append(password)
            assert (folder / "public" / "family" / "astronaut.png").is_file()
            where, albums = _sign_in(url, password)
            assert where == f"{url}/albums", albums
            assert re.search(r'<tr data-album="family">\s*<td>.*?</td>\s*<td>yes</td>', albums, re.S), albums
            if run:
                assert password != passwords[0] and "/sign-in" in _sign_in(url, passwords[0])[0]
            demo.send_signal(signal.SIGTERM)
            assert demo.wait(timeout=DEADLINE) == 0, log()
    assert not (tmp_path / "elsewhere").exists()


def test_watch_publishes_a_dropped_photo_logs_json_and_stops_on_sigterm(site, photos):
    site.ok("policy", "set", "family", "method=blur", "verify=false")  # fast; the method does not matter here
    assert site.ok("albums", "share", "family") == "anon-plugin: album family shared; 0 photo(s) queued\n"
    watch = ["--config", str(site.config), "watch", "--log-format", "json"]
    with _started(watch, site.data.parent / "watch.stderr") as (daemon, log):
        def running() -> str:
            return f"exit code {daemon.poll()}; stderr: {log()}"

        wait_until(lambda: daemon.poll() is not None or "watching" in log(), "the daemon to start", running)
        assert daemon.poll() is None, running()
        shutil.copy(photos[ONE_FACE], site.library / "family" / "new.jpg")
        copy = site.public / "family" / "new.jpg"
        wait_until(lambda: daemon.poll() is not None or (copy.is_file() and "published" in log()),
                   "the public copy of new.jpg", running)
        assert daemon.poll() is None, running()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=DEADLINE) == 0, log()
    lines = log().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(e, dict) and set(e) == {"time", "level", "logger", "message"} for e in entries), lines
    published = [e for e in entries if re.fullmatch(
        rf"family/new\.jpg: published {re.escape(str(copy))} \(1 faces, 0 covered, [\d.]+ s\)", e["message"])]
    assert len(published) == 1, lines
    assert (published[0]["level"], published[0]["logger"]) == ("info", "anon_plugin.worker")
    assert entries[-1]["message"] == "stopped"
    assert site.states() == {"new.jpg": "published"}
    assert copy.read_bytes() != (site.library / "family" / "new.jpg").read_bytes()


class Warnings(logging.Handler):
    """The worker's warnings, whatever the ``anon_plugin`` logger was set to by earlier commands."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def worker_warnings() -> Iterator[Warnings]:
    handler, logger = Warnings(), logging.getLogger("anon_plugin.worker")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _running(marker: str) -> list[int]:
    """Pids of live processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


@pytest.fixture
def slow_hook() -> Iterator[str]:
    """``sleep 30.<unique>``: a hook that outlives its timeout; what it leaves running is ended afterwards."""
    command = f"sleep 30.{uuid.uuid4().int % 10**9:09d}"
    yield command
    for pid in _running(command):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def test_after_publish_runs_the_albums_command_after_a_publish(site, photos, tmp_path, worker_warnings):
    hook = tmp_path / "hook"
    site.ok("policy", "set", "family", "method=blur", "verify=false",
            f'after_publish=touch {hook}-"$ANON_ALBUM"; echo "$ANON_PUBLIC_DIR" > {hook}.dir')
    shutil.copy(photos[SMALL], site.library / "family" / "a.jpg")
    site.ok("albums", "share", "family")
    assert not (tmp_path / "hook-family").exists()
    site.drain()
    assert site.states() == {"a.jpg": "published"}
    assert (tmp_path / "hook-family").is_file()
    assert (tmp_path / "hook.dir").read_text() == f"{site.public / 'family'}\n"
    assert worker_warnings.messages == []


def test_a_failing_or_slow_after_publish_is_a_warning_and_never_blocks_publishing(site, photos, worker_warnings,
                                                                                slow_hook):
    site.ok("policy", "set", "family", "method=blur", "verify=false", "after_publish=echo gallery down >&2; exit 3")
    shutil.copy(photos[SMALL], site.library / "family" / "a.jpg")
    site.ok("albums", "share", "family")
    site.drain()
    assert site.states() == {"a.jpg": "published"} and (site.public / "family" / "a.jpg").is_file()
    assert worker_warnings.messages == ["family: after_publish exited 3: gallery down"]

    site.ok("policy", "set", "family", f"after_publish={slow_hook}", "after_publish_timeout=0.5")
    shutil.copy(photos[ONE_FACE], site.library / "family" / "b.jpg")
    assert site.ok("albums", "share", "family").endswith("anon-plugin: album family shared; 1 photo(s) queued\n")
    start = time.monotonic()
    site.drain()
    assert time.monotonic() - start < 20  # the hook's 30 s were cut at its timeout
    assert site.states() == {"a.jpg": "published", "b.jpg": "published"}
    assert len(worker_warnings.messages) == 2
    assert re.fullmatch(rf"family: after_publish timed out after [\d.]+ s: {re.escape(slow_hook)}",
                        worker_warnings.messages[1]), worker_warnings.messages

    # A later photo still publishes, under the same slow hook.
    shutil.copy(photos[OTHER], site.library / "family" / "c.jpg")
    site.ok("albums", "share", "family")
    site.drain()
    assert site.states() == {"a.jpg": "published", "b.jpg": "published", "c.jpg": "published"}
    assert sorted(p.name for p in (site.public / "family").iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]
    assert site.read(lambda session: set(session.scalars(sa.select(Output.status)))) == {"published"}


def test_a_timed_out_after_publish_leaves_nothing_running(site, photos, slow_hook):
    site.ok("policy", "set", "family", "method=blur", "verify=false", f"after_publish={slow_hook}",
            "after_publish_timeout=0.5")
    shutil.copy(photos[SMALL], site.library / "family" / "a.jpg")
    site.ok("albums", "share", "family")
    site.drain()
    assert site.states() == {"a.jpg": "published"}
    assert _running(slow_hook) == []
