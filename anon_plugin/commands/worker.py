"""``anon-plugin worker``: a Celery worker process for the celery backend (``jobs/remote.py``)."""

from __future__ import annotations

import click

from . import Refusal, settings


@click.command("worker")
@click.option("--device", default=None, metavar="DEVICE",
              help="cpu, cuda or cuda:N: the device of this process (one process per GPU). "
                   "Default: [inference] device.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="One line per publish and per failure, for people or for machines.")
@click.pass_context
def worker_command(ctx: click.Context, device: str | None, log_format: str) -> None:
    """Take batches of photos from the broker and publish them ([queue] backend = "celery").

    Checks first that this machine sees the library roots and the public root at the configured paths,
    loads the models once, then runs one batch at a time on DEVICE. SIGTERM or SIGINT: the batch in
    hand is finished, then exit 0.
    """
    from .. import logs
    from ..inference.device import resolve
    from ..jobs.remote import serve

    logs.setup(log_format)
    s = settings(ctx)
    try:
        resolved = resolve(device or s.inference.device)
    except ValueError as exc:
        raise Refusal(f"--device {device or s.inference.device}: {exc}") from None
    ctx.exit(serve(s, resolved))
