"""``anon-plugin serve`` (daemon + panel in one process) and ``anon-plugin admin`` (the panel alone),
run as the container runs them: a real process on a real port, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from anon_plugin.store.db import engine_for, session_scope
from anon_plugin.store.tables import Album

START = 120.0  # seconds: importing torch and loading the models on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str) -> tuple[int, str, dict]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def _start(command: str, environ, tmp_path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, **environ(ANON_ADMIN_BIND=f"127.0.0.1:{port}")}
    log = open(tmp_path / f"{command}.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "anon_plugin", command], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / f"{command}.log").read_text()
        try:
            if _get(base + "/healthz")[0] == 200:
                return process, base
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    pytest.fail(f"anon-plugin {command} did not answer within {START} s: {(tmp_path / f'{command}.log').read_text()}")


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


@pytest.mark.parametrize("command", ["serve", "admin"])
def test_the_panel_answers_and_sigterm_stops_the_process_with_0(command, settings, environ, tmp_path):
    process, base = _start(command, environ, tmp_path)
    try:
        assert _get(base + "/health")[:2] == (200, "ok\n")  # what the Dockerfile's HEALTHCHECK asks
        status, _, headers = _get(base + "/albums")
        assert status == 302 and headers["Location"].startswith("/sign-in")
        status, page, headers = _get(base + "/sign-in")
        assert status == 200 and 'name="username"' in page and 'name="password"' in page
        assert headers["Server"] == "anon-plugin"  # waitress, not Flask's development server
        if command == "serve":  # the daemon runs too: its start-up scan found the albums
            engine = engine_for(settings.database_url)
            with session_scope(engine, read_only=True) as session:
                names = set(session.scalars(sa.select(Album.name)))
            engine.dispose()
            assert names == {"family", "club"}
    finally:
        code = _stop(process)
    log = (tmp_path / f"{command}.log").read_text()
    assert code == 0, log
    assert "Traceback" not in log
    if command == "serve":
        assert "stopped" in log  # the daemon's own stop ran
