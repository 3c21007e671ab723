"""``api`` (serve the HTTP API), ``openapi`` (its document) and ``api-keys create|list|revoke``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import structlog

from outbox.database import is_sqlite
from worker.access.keys import create_key, key_view, list_keys, revoke_key
from worker.access.principal import Scope
from worker.cli.options import json_option
from worker.cli.output import print_json, print_listing
from worker.cli.state import State, pass_state

log = structlog.get_logger("worker.cli")


@click.command("api")
@click.option("--host", help="Address to listen on (default 127.0.0.1; 0.0.0.0 with PORT).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default PORT or 8080).")
@pass_state
def api(state: State, host: str | None, port: int | None) -> None:
    """Serve the HTTP API (/v1/webhooks, /v1/events) and the portal (/portal) with
    uvicorn. With PostgreSQL, CATENTIO_PORTAL_SECRET is required."""
    from worker.api.server import ApiService, build_context
    from worker.telemetry.exporter import Telemetry, serving
    from worker.telemetry.tracing import open_tracing

    settings = state.settings
    # Metrics are on with CATENTIO_METRICS_PORT (/metrics, /healthz and /readyz on a port
    # of their own, as every long-running process has) or CATENTIO_API_METRICS (the same
    # three on the API's own port); either way the requests are counted.
    metrics_on = settings.metrics_port is not None or settings.api_metrics
    telemetry = Telemetry(settings, process="api") if metrics_on else None
    context = build_context(
        settings,
        migrate=is_sqlite(settings.database_url),
        telemetry=telemetry,
        tracing=open_tracing(settings, process="api"),
    )
    service = ApiService(
        context, host=host or settings.api_host, port=settings.api_port if port is None else port
    )
    own_port = telemetry if settings.metrics_port is not None else None
    try:
        with serving(own_port, context.engine, context.sessions):
            service.serve()
    finally:
        service.close()
    log.info("api.stopped")


@click.command("openapi")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
def api_openapi(output: Path | None) -> None:
    """Print the OpenAPI 3 document (docs/openapi.json is this output)."""
    from worker.api.openapi import offline_document

    text = offline_document()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")


@click.group("api-keys")
def api_keys() -> None:
    """Keys of the HTTP API (shown once, stored as a hash)."""


@api_keys.command("create")
@click.option("--workspace", help="The workspace the key acts for.")
@click.option(
    "--all-workspaces",
    is_flag=True,
    help="An admin key: acts for the workspace a request names in X-Catentio-Workspace.",
)
@click.option(
    "--scope",
    type=click.Choice([s.value for s in Scope]),
    default=Scope.WRITE.value,
    show_default=True,
)
@click.option("--name", help="What the key is for, for people.")
@json_option
@pass_state
def api_keys_create(
    state: State,
    workspace: str | None,
    all_workspaces: bool,
    scope: str,
    name: str | None,
    as_json: bool,
) -> None:
    """Mint a key. It is printed this once; only its hash is kept."""
    if all_workspaces == (workspace is not None):
        raise click.UsageError("give either --workspace W or --all-workspaces")
    with state.sessions()() as session, session.begin():
        created = create_key(session, workspace_id=workspace, scope=scope, name=name)
    view = key_view(created.record)
    if as_json:
        print_json({**view, "key": created.key})
        return
    click.echo(f"API key {view['id']} ({scope}) for {workspace or 'all workspaces'}")
    click.echo(f"key, shown only now: {created.key}")


@api_keys.command("list")
@click.option("--workspace", help="Only this workspace's keys.")
@json_option
@pass_state
def api_keys_list(state: State, workspace: str | None, as_json: bool) -> None:
    """Keys (never the keys themselves), newest first."""
    with state.sessions()() as session:
        rows = [key_view(k) for k in list_keys(session, workspace_id=workspace)]
    if as_json:
        print_json(rows)
        return
    columns = [
        "id",
        "workspace_id",
        "scope",
        "name",
        "hint",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    print_listing(rows, columns)


@api_keys.command("revoke")
@click.argument("key_id")
@pass_state
def api_keys_revoke(state: State, key_id: str) -> None:
    """Revoke a key: requests with it are refused from now on."""
    with state.sessions()() as session, session.begin():
        changed = revoke_key(session, key_id)
    click.echo(f"revoked {key_id}" if changed else f"{key_id} was already revoked")


COMMANDS = [api, api_openapi, api_keys]
