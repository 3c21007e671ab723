"""``catentio-webhooks demo``: the whole pipeline on the embedded default, checked.

A receiver on loopback verifies every request with ``catentio_signing``. Three endpoints
subscribe: a healthy one, a flaky one (500 twice, then 200, for every event) and one
that answers 410 Gone. The demo publishes events, runs the poller and worker threads in
this process, shows progress, prints the history and checks every outcome.
"""

from __future__ import annotations

import ipaddress
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from outbox.models import FINISHED_STATUSES, Attempt, Delivery, DeliveryStatus, Endpoint, Event
from outbox.publish import publish
from worker.access.keys import create_key
from worker.demo.receiver import Receiver, always, sequence
from worker.durations import format_duration
from worker.endpoints.registry import create_endpoint
from worker.endpoints.secretbox import generate_key
from worker.logs import configure_logging
from worker.runtime import Runtime
from worker.settings import Settings

DEMO_SCHEDULE = tuple(timedelta(seconds=s) for s in (0.5, 1, 2, 4, 8))
"""The compressed retry schedule the demo announces (production: 5s … 10h)."""

EVENT_TYPES = ("run.succeeded", "project.paused", "subtask.failed")
WORKSPACE = "ws_demo"


@dataclass(frozen=True)
class Check:
    """One expectation and whether it held."""

    name: str
    ok: bool
    detail: str


def demo_settings(database_url: str) -> Settings:
    """Embedded settings, loopback opened on purpose, retries compressed."""
    return Settings(
        database_url=database_url,
        allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),),
        retry_schedule=DEMO_SCHEDULE,
        poll_interval=0.05,
        sweep_interval=1.0,
        sweep_after=timedelta(seconds=5),
        worker_threads=8,
        request_timeout=5.0,
        # The demo's warnings (endpoint disabled, circuit opened) are expected, and
        # the tables tell the story; keep the terminal for the progress bar.
        log_level="ERROR",
        encryption_keys=(generate_key(),),
    )


def run_demo(console: Console, *, events: int = 36, timeout: float = 60.0) -> bool:
    """Run the demo; True when every outcome is the expected one."""
    with tempfile.TemporaryDirectory(prefix="catentio-demo-") as directory:
        url = f"sqlite:///{Path(directory) / 'demo.sqlite3'}"
        return _run(console, demo_settings(url), events=events, timeout=timeout)


def _run(console: Console, settings: Settings, *, events: int, timeout: float) -> bool:
    configure_logging(level=settings.log_level, fmt="console")
    console.print("[bold]Catentio Webhooks demo[/] — embedded: SQLite + in-process broker")
    console.print(
        "  retry schedule compressed for the demo: "
        + ", ".join(format_duration(d) for d in settings.retry_schedule)
        + " (production default: 5s, 5m, 30m, 2h, 5h, 10h, 10h)"
    )
    console.print("  loopback opened on purpose: CATENTIO_ALLOWED_NETWORKS=127.0.0.0/8")
    console.print(
        f"  circuit breaker: after {settings.circuit_threshold} consecutive failures an "
        "endpoint gets one probe at a time; the flaky one will trip it"
    )
    runtime = Runtime.open(settings)
    try:
        with Receiver() as receiver:
            names = _register(runtime, receiver)
            with runtime.running():
                _publish(runtime, events)
                console.print(f"  published {events} events to workspace {WORKSPACE}")
                finished = _progress(console, runtime, events * len(names), timeout)
            table, checks = _report(runtime, receiver, names, events)
            console.print(table)
            _print_flaky_history(console, runtime, names)
            checks.append(_through_the_api(console, runtime, names))
    finally:
        runtime.close()
    checks.insert(0, Check("all deliveries finished", finished, ""))
    for check in checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"  {mark} {check.name} {check.detail}")
    ok = all(c.ok for c in checks)
    console.print("[bold green]demo passed[/]" if ok else "[bold red]demo FAILED[/]")
    return ok


def _through_the_api(console: Console, runtime: Runtime, names: dict[str, str]) -> Check:
    """Mint an API key and read the healthy endpoint's history over HTTP, as the control
    plane would."""
    from worker.api.server import ApiService, context_for_runtime

    healthy = next(i for i, name in names.items() if name == "healthy")
    with runtime.sessions() as session, session.begin():
        minted = create_key(session, workspace_id=WORKSPACE, scope="read", name="demo")
    key, key_id = minted.key, minted.record.id
    service = ApiService(context_for_runtime(runtime), host="127.0.0.1", port=0)
    service.start()
    try:
        path = f"/v1/webhooks/{healthy}/deliveries?limit=3"
        response = httpx.get(
            service.base_url + path, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
    finally:
        service.stop(dispose=False)
    body = response.json()
    rows = body.get("data") or []
    console.print(
        f"\n[bold]HTTP API[/] (API key {key_id}, minted for this, read scope): "
        f"GET {path} → {response.status_code}"
    )
    for row in rows:
        console.print(f"  {row['id']}  {row['eventType']:<15} {row['status']}")
    ok = response.status_code == 200 and len(rows) == 3
    ok = ok and all(r["status"] == "succeeded" for r in rows)
    return Check("the API lists the healthy endpoint's deliveries", ok, f"({response.status_code})")


def _register(runtime: Runtime, receiver: Receiver) -> dict[str, str]:
    behaviours = {
        "healthy": always(200),
        "flaky": sequence(500, 500, 200),
        "gone": always(410),
    }
    names: dict[str, str] = {}
    with runtime.sessions() as session, session.begin():
        for name, behaviour in behaviours.items():
            path = f"/{name}"
            created = create_endpoint(
                session,
                runtime.box,
                workspace_id=WORKSPACE,
                url=receiver.base_url + path,
                # Not "*": the operational events about the gone endpoint are checked
                # separately, so each endpoint gets exactly the demo's events.
                event_types=[f"{t.split('.')[0]}.*" for t in EVENT_TYPES],
                description=f"demo {name} receiver",
                allowed_networks=runtime.settings.allowed_networks,
            )
            receiver.route(path, secret=created.secret, behaviour=behaviour)
            names[created.endpoint.id] = name
    return names


def _publish(runtime: Runtime, events: int) -> None:
    with runtime.sessions() as session, session.begin():
        for i in range(events):
            publish(
                session,
                workspace_id=WORKSPACE,
                type=EVENT_TYPES[i % len(EVENT_TYPES)],
                data={"sequence": i, "runId": f"run_{i:04d}"},
                idempotency_key=f"demo-{i}",
            )


def _progress(console: Console, runtime: Runtime, total: int, timeout: float) -> bool:
    columns = (
        TextColumn("  delivering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("deliveries", total=total, detail="")
        while time.monotonic() < deadline:
            with runtime.sessions() as session:
                counts = Counter(
                    dict(
                        session.execute(
                            select(Delivery.status, func.count()).group_by(Delivery.status)
                        ).all()
                    )
                )
                held = session.scalar(
                    select(func.count()).where(
                        Delivery.status == DeliveryStatus.PENDING, Delivery.held_by.is_not(None)
                    )
                )
            done = sum(counts[s] for s in FINISHED_STATUSES)
            detail = " ".join(f"{s}={counts[s]}" for s in DeliveryStatus if counts[s])
            if held:
                detail += f" (held behind the circuit breaker's probe: {held})"
            progress.update(task, completed=done, detail=detail)
            if done >= total:
                return True
            time.sleep(0.1)
    return False


def _report(
    runtime: Runtime, receiver: Receiver, names: dict[str, str], events: int
) -> tuple[Table, list[Check]]:
    with runtime.sessions() as session:
        deliveries = list(session.scalars(select(Delivery)))
        attempts = list(session.scalars(select(Attempt)))
        endpoints = {e.id: e for e in session.scalars(select(Endpoint))}
    by_delivery: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_delivery[attempt.delivery_id].append(attempt)

    table = Table(title="delivery history", header_style="bold")
    for column in ("endpoint", "deliveries", "statuses", "attempts", "HTTP", "median ms", "max ms"):
        table.add_column(column)
    summary: dict[str, tuple[Counter[str], Counter[int]]] = {}
    for endpoint_id, name in names.items():
        mine = [d for d in deliveries if d.endpoint_id == endpoint_id]
        tries = [a for d in mine for a in by_delivery[d.id]]
        statuses = Counter(d.status for d in mine)
        codes = Counter(a.response_status or 0 for a in tries)
        durations = [a.duration_ms for a in tries] or [0.0]
        summary[name] = (statuses, Counter(len(by_delivery[d.id]) for d in mine))
        table.add_row(
            name,
            str(len(mine)),
            ", ".join(f"{k}={v}" for k, v in sorted(statuses.items())),
            str(len(tries)),
            ", ".join(f"{k} x{v}" for k, v in sorted(codes.items())),
            f"{statistics.median(durations):.1f}",
            f"{max(durations):.1f}",
        )

    with runtime.sessions() as session:
        notices = list(session.scalars(select(Event.type).where(Event.type.like("webhook.%"))))
    received = receiver.received()
    healthy, flaky, gone = summary["healthy"], summary["flaky"], summary["gone"]
    gone_endpoint = next(endpoints[i] for i, n in names.items() if n == "gone")
    checks = [
        Check(
            "every request verified with catentio_signing",
            bool(received) and all(r.verified for r in received),
            f"({sum(r.verified for r in received)}/{len(received)})",
        ),
        Check(
            "healthy: every event succeeded on the first attempt",
            healthy[0] == Counter({DeliveryStatus.SUCCEEDED: events}) and set(healthy[1]) == {1},
            "",
        ),
        Check(
            "flaky: every event succeeded on the third attempt (500, 500, 200)",
            flaky[0] == Counter({DeliveryStatus.SUCCEEDED: events}) and set(flaky[1]) == {3},
            "",
        ),
        Check(
            "gone: 410 disabled the endpoint; the rest were kept as skipped",
            not gone_endpoint.enabled
            and gone[0][DeliveryStatus.FAILED] >= 1
            and gone[0][DeliveryStatus.FAILED] + gone[0][DeliveryStatus.SKIPPED] == events,
            f"(reason: {gone_endpoint.disabled_reason})",
        ),
        Check(
            "the outbox was told: webhook.endpoint.disabled published for the workspace",
            notices == ["webhook.endpoint.disabled"],
            "",
        ),
    ]
    return table, checks


def _print_flaky_history(console: Console, runtime: Runtime, names: dict[str, str]) -> None:
    flaky_id = next(i for i, n in names.items() if n == "flaky")
    with runtime.sessions() as session:
        delivery = session.scalars(
            select(Delivery).where(Delivery.endpoint_id == flaky_id).order_by(Delivery.id)
        ).first()
        if delivery is None:
            return
        attempts = list(
            session.scalars(
                select(Attempt).where(Attempt.delivery_id == delivery.id).order_by(Attempt.number)
            )
        )
    table = Table(title=f"attempts of one flaky delivery ({delivery.id})", header_style="bold")
    for column in ("#", "started", "after previous", "HTTP", "ms", "outcome"):
        table.add_column(column)
    previous = None
    for attempt in attempts:
        gap = f"{(attempt.started_at - previous).total_seconds():.2f}s" if previous else "-"
        previous = attempt.started_at
        table.add_row(
            str(attempt.number),
            attempt.started_at.strftime("%H:%M:%S.%f")[:-3],
            gap,
            str(attempt.response_status),
            f"{attempt.duration_ms:.1f}",
            attempt.outcome,
        )
    console.print(table)
