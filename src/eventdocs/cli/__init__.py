"""The ``eventdocs`` command: serve, rebuild, check, inspect, diff, revert, move, measure.

Every command takes ``--store PATH|URI`` (default ``./eventdocs.db``, or
``$EVENTDOCS_STORE``). The commands that only need the log (export, import,
replay, verify, history, diff) work without ``--target``; given one they
also know its indexes and views. Commands that write (replay, import,
revert) must own the SQLite file: beside a running server they are refused
(``replay --url`` asks that server to replay instead).
The others open it read-only and work beside a server.

Errors are caught in one place, :meth:`_Cli.main`: one line on stderr and a
non-zero exit (2 for bad usage, 1 for everything else), never a traceback
(``EVENTDOCS_DEBUG=1`` re-raises unexpected ones).

The commands live by theme beside this module (:mod:`.server`, :mod:`.log`,
:mod:`.documents`, with the options and helpers they share in
:mod:`.common`); this module is the one place they are wired into the
``eventdocs`` group.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from eventdocs.cli.documents import diff, history, revert, view_command
from eventdocs.cli.log import export, import_command, replay_command, verify_command
from eventdocs.cli.server import bench, init, serve, token
from eventdocs.errors import EventdocsError

__all__ = ["main"]


# -- the one place errors are reported ---------------------------------------------


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"eventdocs: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def _describe(exc: EventdocsError) -> str:
    details = "; ".join(f"{d.path}: {d.message}" for d in exc.errors if d.message not in exc.detail)
    return f"{exc.detail} ({details})" if details else exc.detail


class _Cli(click.Group):
    """A group that turns every failure into one line on stderr and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # the help, as click prints it without arguments
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _fail(f"{exc.format_message()}{where}", exc.exit_code)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except EventdocsError as exc:
            _fail(_describe(exc))
        except ModuleNotFoundError as exc:
            if exc.name != "pymongo":
                _fail(f"missing module {exc.name} ({exc}); reinstall eventdocs")
            _fail("MongoDB stores need the mongodb extra: pip install 'eventdocs[mongodb]'")
        except OSError as exc:
            name = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{name}{exc.strerror or exc}")
        except Exception as exc:
            if os.environ.get("EVENTDOCS_DEBUG"):
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} (EVENTDOCS_DEBUG=1 shows where)")
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventdocs")
def main() -> None:
    """eventdocs: an event-sourced document store with a REST API."""


for _command in (
    serve,
    token,
    init,
    replay_command,
    verify_command,
    history,
    diff,
    revert,
    export,
    import_command,
    bench,
    view_command,
):
    main.add_command(_command)
