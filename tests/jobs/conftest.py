"""Real servers for the celery backend's tests: a Redis of the test's own, and a fresh PostgreSQL database."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS = Path("/usr/bin/redis-server")
START_TIMEOUT = 20.0  # seconds for Redis to answer a ping


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """``/usr/bin/redis-server`` on a port and folder of its own; ``restart()`` keeps both, and the persistence."""

    def __init__(self, folder: Path, append_only: bool):
        self.folder, self.append_only, self.port = folder, append_only, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = folder / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [str(REDIS), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                "--save", "", "--appendonly", "yes" if self.append_only else "no", "--daemonize", "no",
                "--logfile", str(self.log)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.starts += 1
        self._wait_ready()

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + START_TIMEOUT
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"redis-server exited ({self.process.returncode}): {self.tail()}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise AssertionError(f"redis-server did not answer within {START_TIMEOUT:g} s: {self.tail()}")

    def stop(self) -> None:
        """SIGTERM (Redis writes its append-only file, when it has one), then wait for the exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.is_file() else ""


@pytest.fixture
def redis_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis for this test only; append-only when parametrized indirectly with True."""
    if not REDIS.is_file():
        pytest.skip(f"{REDIS} is not installed (Debian's redis-server)")
    server = RedisServer(tmp_path / "redis", append_only=bool(getattr(request, "param", False)))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A new, empty database of the session's PostgreSQL cluster for this test (same socket), dropped after."""
    import psycopg
    import sqlalchemy as sa

    cluster = sa.make_url(postgres_url)
    name = f"t_{uuid.uuid4().hex}"
    conninfo = f"host={cluster.query['host']} user={cluster.username} dbname={cluster.database}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield cluster.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

