"""``anon-plugin admin``: the admin panel alone, served by waitress (``serve`` runs it beside the daemon)."""

from __future__ import annotations

import signal

import click

from . import guarded, settings

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


@click.command("admin")
@THREADS
@click.pass_context
def admin_command(ctx: click.Context, threads: int) -> None:
    """Run the admin panel alone (the daemon runs elsewhere on the same database).

    It listens on [admin] bind (default 127.0.0.1:8470); SIGTERM or SIGINT
    stops it. `anon-plugin serve` runs the panel and the daemon together.
    """
    from .. import logs
    from ..admin import create_app
    from ..admin.server import PanelServer

    logs.setup()
    s = settings(ctx)
    app = guarded(ctx, lambda: create_app(s))
    server = guarded(ctx, lambda: PanelServer(app, s.admin.host, s.admin.port, threads))
    stop_on_signals(server)
    click.echo(f"anon-plugin: admin panel on {server.url}", err=True)
    server.run()
