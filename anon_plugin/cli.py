"""The ``anon-plugin`` command: the group of every command, and the one place that turns
what a command raises into one line on stderr and an exit code.

The commands live in ``anon_plugin.commands`` (and ``evaluate``, ``training``), imported only
when run, so ``anon-plugin --help`` and ``--version`` answer at once.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import __version__
from .commands import Failure, describe, unexpected
from .errors import AnonPluginError


class _LazyGroup(click.Group):
    """The commands, each imported only when run, so --help stays instant; what they raise ends the run
    in one line (a library error: exit 1; another error: exit 1, or its traceback with --debug)."""

    lazy = {  # name: (module:command, one-line help)
        "anonymize": ("anon_plugin.commands.anonymize:anonymize_command",
                      "Anonymize every face in INPUTS (files or folders, recursively) into the --output folder."),
        "explain": ("anon_plugin.commands.anonymize:explain_command",
                    "Write the explain picture of IMAGE: per face, crop | ID attention map | mask | result."),
        "albums": ("anon_plugin.commands.albums:albums_group", "List albums and share, unshare or republish them."),
        "admin": ("anon_plugin.commands.admin:admin_command",
                  "Run the admin panel alone (the daemon runs elsewhere on the same database)."),
        "db": ("anon_plugin.commands.db:db", "Create or upgrade the database (Alembic migrations)."),
        "demo": ("anon_plugin.commands.daemon:demo_command",
                 "Run the daemon on a demo album made from the bundled example photo, then say what it published."),
        "policy": ("anon_plugin.commands.policy:policy_group", "Show or change an album's policy."),
        "provenance": ("anon_plugin.commands.provenance:provenance_command",
                       "Print the record of an original or a public copy as JSON."),
        "serve": ("anon_plugin.commands.daemon:serve_command", "Run the daemon (and the admin panel) in one process."),
        "users": ("anon_plugin.commands.users:users_group", "Add, list or remove the admin panel's users."),
        "worker": ("anon_plugin.commands.worker:worker_command",
                   "Take batches of photos from the broker and publish them ([queue] backend = \"celery\")."),
        "watch": ("anon_plugin.commands.daemon:watch_command",
                  "Run the daemon: watch the library roots, publish public copies of shared albums."),
        "evaluate": ("anon_plugin.evaluate.command:evaluate_command",
                     "Measure anonymization on the labeled face set in DATA_DIR, every method side by side."),
        "pack-generator-data": ("anon_plugin.training.generator_data:pack_command",
                                "Pack aligned crops, attention maps and regions for training the generator."),
        "train-generator": ("anon_plugin.training.generator:train_command",
                            "Train the generator on a pack of aligned training faces."),
        "train-attributes": ("anon_plugin.training.attributes:train_attributes",
                             "Train the CelebA-40 attribute classifier on CelebA train identities."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        import importlib

        module, attribute = self.lazy[name][0].split(":")
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AnonPluginError as exc:
            raise Failure(describe(exc)) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort, EOFError):
            raise  # click's own: usage errors, exits, ^C
        except Exception as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            raise Failure(unexpected(exc)) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy[name][1] if name in self.lazy else self.commands[name].get_short_help_str(100))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "--version", "-V", prog_name="anon-plugin")
@click.option("--config", "-c", "config", type=click.Path(dir_okay=False, path_type=Path), envvar="ANON_CONFIG",
              default=None, help="Settings file (TOML); ANON_* variables override it. [env: ANON_CONFIG]")
@click.option("--debug", is_flag=True, help="Show full tracebacks on unexpected errors.")
@click.pass_context
def main(ctx: click.Context, config: Path | None, debug: bool) -> None:
    """Privacy plugin for self-hosted photo servers: public copies of shared albums in which
    no face can be recognized, and the engine's own commands.

    Runs offline; every model ships inside the installed packages.
    """
    ctx.obj = {"debug": debug, "config": config}
