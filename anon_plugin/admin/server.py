"""The panel served by waitress (a production WSGI server, not Flask's development server)."""

from __future__ import annotations

import logging
import threading

from flask import Flask
from waitress import wasyncore
from waitress.server import create_server

from ..errors import SettingsError

log = logging.getLogger("anon_plugin.admin")
THREADS = 4


class PanelServer:
    """Waitress listening on ``host:port`` (port 0: a free one). ``run()`` serves until ``stop()``,
    which any thread, or a signal handler, may call."""

    def __init__(self, app: Flask, host: str, port: int, threads: int = THREADS):
        try:
            self._server = create_server(app, host=host, port=port, threads=threads, ident="anon-plugin",
                                         clear_untrusted_proxy_headers=True)
        except OSError as exc:
            raise SettingsError(f"[admin] bind: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        return self._server.effective_port

    @property
    def url(self) -> str:
        host = self._server.effective_host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def run(self) -> None:
        log.info("admin panel on %s", self.url)
        self._server.run()
        self._server.task_dispatcher.shutdown()

    def stop(self) -> None:
        """Close the listening socket and every connection from the server's own loop (woken by its
        trigger, so this is safe from any thread), and ``run()`` returns."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        server = self._server
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))

    def start(self) -> PanelServer:
        """Serve on a background thread (tests, benchmarks); ``close()`` stops it."""
        self._thread = threading.Thread(target=self.run, name="admin-panel", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(30)

    def __enter__(self) -> PanelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
