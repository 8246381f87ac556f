"""A real ``redis-server`` for the tests of the celery backend, the dispatcher and the panel (one class, used
through the ``redis_server`` fixture of tests/conftest.py)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from anon_plugin.store.tables import utcnow

REDIS = Path("/usr/bin/redis-server")  # Debian's redis-server, installed by .ci/run
PASSWORD = "s3cret-broker"  # deploy/ runs Redis with a password: so do the tests
START_TIMEOUT = 20.0  # seconds for Redis to answer a ping


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """``redis-server`` on a loopback port and a folder of its own, with a password; ``restart()`` keeps port,
    folder and persistence (without the append-only file, a restart loses every message)."""

    def __init__(self, folder: Path, append_only: bool = False):
        self.folder, self.append_only, self.port = folder, append_only, free_port()
        self.url = f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"
        self.log = folder / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started = self.ready = utcnow()  # when the last start began, and when Redis first answered

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.started = utcnow()
        self.process = subprocess.Popen(
            [str(REDIS), "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
             "--dir", str(self.folder), "--save", "", "--appendonly", "yes" if self.append_only else "no",
             "--daemonize", "no", "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.starts += 1
        self._wait(lambda client: bool(client.ping()), "answer a ping")
        self.ready = utcnow()

    def settled(self) -> None:
        """Wait until Redis's uptime counts two seconds: its start is known to two seconds (``broker.state``),
        and a message sent in its first two may be taken for one sent before it started, and sent again."""
        self._wait(lambda client: int(client.info("server")["uptime_in_seconds"]) >= 2, "count two seconds up")

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with self.client() as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"redis-server exited ({self.process.returncode}): {self.tail()}")
                try:
                    if ready(client):
                        return
                except redis.RedisError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not {what} within {START_TIMEOUT:g} s: {self.tail()}")

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

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.is_file() else ""
