"""``anon-plugin admin``: the admin panel alone, served by waitress (``serve`` runs it beside the daemon)."""

from __future__ import annotations

import signal

import click

from . import settings

THREADS = click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True,
                       help="Requests served at once.")


def stop_on_signals(server) -> None:
    """SIGTERM or SIGINT stops ``server`` (its ``run()`` returns); a second signal while stopping is ignored."""

    def on_signal(*_: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        server.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)


def panel_server(s, threads: int | None = None, service=None):
    """The panel's waitress server on [admin] bind, stopped by SIGTERM or SIGINT from now on; with
    ``service``, the panel shows that daemon's queue and wakes it on a share or a republish."""
    from ..admin import create_app
    from ..admin.server import THREADS as DEFAULT_THREADS
    from ..admin.server import PanelServer

    app = create_app(s, service=service)
    server = PanelServer(app, s.admin.host, s.admin.port, threads or DEFAULT_THREADS)
    stop_on_signals(server)
    return server


@click.command("admin")
@THREADS
@click.pass_context
def admin_command(ctx: click.Context, threads: int) -> None:
    """Run the admin panel alone (the daemon runs elsewhere on the same database).

    It listens on [admin] bind (default 127.0.0.1:8470); SIGTERM or SIGINT
    stops it. `anon-plugin serve` runs the panel and the daemon together.
    """
    from .. import logs

    logs.setup()
    server = panel_server(settings(ctx), threads)
    click.echo(f"anon-plugin: admin panel on {server.url}", err=True)
    server.run()
