"""``catentio-webhooks``: run the pipeline, manage endpoints, inspect and replay.

Exit codes: 0 success; 1 the operation failed (database or broker unavailable, a demo
outcome not as expected); 2 bad usage or invalid input; 3 no such id; 130 interrupted
(Ctrl-C; a bulk operation can simply be run again). Every error is one line on stderr
that starts with ``error:``.
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

import click
import structlog
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from outbox.errors import CatentioError, ValidationError
from worker.cli.state import State
from worker.errors import (
    ConfigurationError,
    Conflict,
    DeliveriesPending,
    EndpointDisabled,
    EndpointsDisabled,
    InvalidCursor,
    InvalidWindow,
    NotFound,
    NothingToUpdate,
)
from worker.logs import configure_logging
from worker.settings import VARIABLES, Settings

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3

PROCESSES = frozenset({"run", "poller", "worker", "api"})
"""The long-running commands; each names its log lines' ``process`` after itself, every
other command logs as ``cli``."""


def fail(message: str, code: int) -> None:
    """Print one clear line on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def explain(exc: CatentioError) -> str:
    """The error's message with the command line's advice added: the domain says what is
    wrong; which command or flag puts it right is the command line's to say."""
    if isinstance(exc, EndpointDisabled):
        return f"{exc}; enable it first: catentio-webhooks endpoints enable {exc.endpoint_id}"
    if isinstance(exc, EndpointsDisabled):
        return (
            f"{exc}; enable it first (catentio-webhooks endpoints enable ID) "
            "or use --current-subscribers"
        )
    if isinstance(exc, DeliveriesPending):
        return f"{exc}; disable it and let them finish, or delete with --force"
    if isinstance(exc, NothingToUpdate):
        return (
            f"{exc}: give --url, --events, --header, --clear-headers, --description, "
            "--max-concurrency, --rate-limit, --filter or --ordering"
        )
    if isinstance(exc, InvalidCursor):
        return f"--after {exc}"
    if isinstance(exc, InvalidWindow):
        return "--until must be later than --since"
    return str(exc)


class CatentioGroup(click.Group):
    """Turns our errors into one line on stderr and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.UsageError, CatentioError, SQLAlchemyError) as exc:
            if isinstance(ctx.obj, State):
                ctx.obj.discard_created()  # a failed first command leaves no files
            _report(ctx, exc)


def _report(ctx: click.Context, exc: Exception) -> None:
    """One line on stderr and the exit code for ``exc``."""
    if isinstance(exc, click.UsageError):
        # A subcommand's bad option or argument: one line, not click's usage block.
        where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
        fail(f"{exc.format_message()} (see '{where} --help')", EXIT_USAGE)
    elif isinstance(exc, NotFound):
        fail(explain(exc), EXIT_NOT_FOUND)
    elif isinstance(exc, ValidationError | ConfigurationError | Conflict):
        fail(explain(exc), EXIT_USAGE)
    elif isinstance(exc, OperationalError):
        fail(f"database unavailable: {str(exc.orig).strip().splitlines()[0]}", EXIT_FAILURE)
    else:
        fail(str(exc).splitlines()[0], EXIT_FAILURE)


@click.group(cls=CatentioGroup)
@click.version_option(package_name="catentio-webhooks")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Catentio Webhooks: signed, retried, recorded webhook deliveries.

    Reads DATABASE_URL, REDIS_URL and CATENTIO_* from the environment. Without them it
    runs embedded: SQLite in the working directory and an in-process broker.
    """
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        fail(str(exc), EXIT_USAGE)
    command = ctx.invoked_subcommand
    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        process=command if command in PROCESSES else "cli",
    )
    for name in settings.unknown_variables:
        close = difflib.get_close_matches(name, VARIABLES, n=1)
        structlog.get_logger("worker.settings").warning(
            "settings.unknown_variable",
            variable=name,
            hint=f"did you mean {close[0]}?" if close else "no setting reads it",
        )
    state = State(settings)
    ctx.obj = state
    ctx.call_on_close(state.close)


def _register() -> None:
    from worker.cli import (
        api,
        check,
        db,
        deliveries,
        demo,
        endpoints,
        events,
        portal,
        processes,
        prune,
        replay,
        rotation,
        secrets,
        stats,
    )

    for module in (
        api,
        check,
        db,
        deliveries,
        demo,
        endpoints,
        events,
        portal,
        processes,
        secrets,
        prune,
        stats,
        replay,
        rotation,
    ):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
