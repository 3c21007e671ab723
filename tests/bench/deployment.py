"""One installation of the product under test: its database, its broker namespace, its
endpoints and its processes, all of the benchmark's own and removed afterwards.

``distributed``: a fresh PostgreSQL schema (``search_path`` and ``CATENTIO_DB_SCHEMA`` both
name it), a fresh Redis key namespace, ``catentio-webhooks db upgrade``, then one
``poller`` and N ``worker`` processes. ``embedded``: a SQLite file and one ``run``.

The product is driven only from outside, as an operator would: the command line
(``db upgrade``, ``endpoints add --json``, the long-running commands, each started through
:mod:`tests.bench.instrumented` so its statements are counted), ``outbox.publish`` in the
benchmark's own transactions, and SQL for what an operator would read (how many
deliveries succeeded, attempt times) or bulk-load (endpoint copies for fan-out).
The tables and columns the benchmark relies on: ``events`` (written only through
``publish``), ``endpoints`` (copied row by row), ``deliveries.status/workspace_id/
created_at/event_id``, ``attempts.delivery_id/number/started_at``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import outbox
from outbox import publish
from outbox.namespace import DEFAULT_SCHEMA
from tests.bench import procstat
from tests.bench.backends import BackendSampler
from tests.bench.instrumented import PRODUCT_PATH
from tests.bench.publisher import PAD, run_publisher
from tests.bench.receiver import ReceiverProcess
from tests.bench.usage import Snapshot

REPO = Path(__file__).resolve().parents[2]

STOP_GRACE = 60.0
"""Seconds a process gets to stop after SIGTERM before it is killed."""


@dataclass(frozen=True)
class Group:
    """Events to publish: how many, of which type, in which workspace."""

    workspace: str
    count: int
    type: str = "bench.ok"


@dataclass
class Published:
    """Events of one commit: their ids and bodies, and the wall time just before COMMIT."""

    committed_at: float
    ids: dict[str, list[str]] = field(default_factory=dict)  # by workspace
    bodies: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ProductProcess:
    """One long-running product process."""

    name: str
    popen: subprocess.Popen[bytes]
    counts_path: Path
    log_path: Path

    def counts(self) -> dict[str, int]:
        try:
            values: dict[str, int] = json.loads(self.counts_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return values

    def log_records(self) -> Iterator[dict[str, Any]]:
        """The process's JSON log lines (other lines skipped)."""
        with self.log_path.open(errors="replace") as handle:
            for line in handle:
                if line.startswith("{"):
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue


class Deployment:
    """Use as a context manager; see the module docstring."""

    def __init__(
        self,
        *,
        kind: str,
        workdir: Path,
        receiver: ReceiverProcess,
        postgres_url: str | None = None,
        redis_url: str | None = None,
        workers: int = 2,
        threads: int = 8,
        env: Mapping[str, str] | None = None,
        process_env: Callable[[str, int], Mapping[str, str]] | None = None,
        checkout: Path | None = None,
        count_statements: bool = True,
    ) -> None:
        if kind not in ("distributed", "embedded"):
            raise ValueError(f"unknown deployment kind {kind!r}")
        if kind == "distributed" and not (postgres_url and redis_url):
            raise ValueError("a distributed deployment needs PostgreSQL and Redis")
        self.kind = kind
        self.tag = uuid.uuid4().hex[:10]
        self.prefix = f"catbench-{self.tag}"
        self.workdir = workdir / f"{kind}-{self.tag}"
        self.workdir.mkdir(parents=True)
        self.receiver = receiver
        self.workers = workers
        self.threads = threads
        self.env = dict(env or {})
        self.process_env = process_env
        self.checkout = checkout
        self.count_statements = count_statements
        self.processes: list[ProductProcess] = []
        self._key = Fernet.generate_key().decode()
        self._postgres_url = postgres_url
        self._redis_url = redis_url
        self.schema = f"catbench_{self.tag}"
        self.namespace = f"catbench-{self.tag}"
        self._sampler: BackendSampler | None = None
        self._tables: dict[str, sa.Table] = {}
        self._stopped = False
        self._admin: sa.Engine | None = None
        if kind == "distributed":
            assert postgres_url is not None
            admin_url = make_url(postgres_url).set(drivername="postgresql+psycopg")
            self._admin = sa.create_engine(
                admin_url.update_query_dict({"application_name": f"catbench-admin-{self.tag}"})
            )
            self.engine = sa.create_engine(
                admin_url.update_query_dict(
                    {
                        "options": f"-csearch_path={self.schema}",
                        "application_name": f"catbench-harness-{self.tag}",
                    }
                )
            )
        else:
            self._sqlite_path = self.workdir / "catentio.sqlite3"
            self.engine = sa.create_engine(
                f"sqlite:///{self._sqlite_path}", connect_args={"timeout": 60}
            )
        # ``publish`` reaches the product's tables through the namespace it was given:
        # the fresh schema (PostgreSQL), the default prefix (SQLite).
        self.db_schema = self.schema if kind == "distributed" else DEFAULT_SCHEMA
        outbox.bind(self.engine, self.db_schema)

    # -- set-up and tear-down -------------------------------------------------------

    def __enter__(self) -> Deployment:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the database (and, distributed, migrate it and follow its backends)."""
        if self._admin is not None:
            with self._admin.begin() as connection:
                connection.execute(sa.text(f'CREATE SCHEMA "{self.schema}"'))
            self.cli("db", "upgrade")
            self._sampler = BackendSampler(self._admin, self.prefix)
            self._sampler.start()
        else:
            # ``run`` migrates SQLite itself; so does the first command that opens it.
            self.cli("db", "upgrade")

    def close(self) -> None:
        """Stop the processes; drop the schema and the Redis keys; keep the logs."""
        self.stop()
        if self._sampler is not None:
            self._sampler.stop()
        self.engine.dispose()
        if self._admin is not None:
            with self._admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            self._admin.dispose()
        if self._redis_url:
            client = redis.Redis.from_url(self._redis_url)
            keys = list(client.scan_iter(match=f"{self.namespace}*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
            client.close()

    # -- the product's environment and command line ------------------------------------

    def database_url(self, application_name: str) -> str:
        if self.kind == "embedded":
            return f"sqlite:///{self._sqlite_path}"
        assert self._postgres_url is not None
        url = make_url(self._postgres_url).update_query_dict(
            {"options": f"-csearch_path={self.schema}", "application_name": application_name}
        )
        return url.render_as_string(hide_password=False)

    def environment(self, name: str, index: int = 0) -> dict[str, str]:
        """The environment of one product process: the machine's, without any
        configuration of the product's, then the benchmark's."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CATENTIO_") and k not in ("DATABASE_URL", "REDIS_URL")
        }
        # The backend sampler follows "<prefix>-<name>"; one-shot commands are left out.
        application_name = f"catbench-cli-{self.tag}" if name == "cli" else f"{self.prefix}-{name}"
        env.update(
            DATABASE_URL=self.database_url(application_name),
            CATENTIO_ENCRYPTION_KEYS=self._key,
            CATENTIO_ALLOWED_NETWORKS="127.0.0.0/8",
            CATENTIO_LOG_FORMAT="json",
            CATENTIO_LOG_LEVEL="WARNING",
        )
        if self.kind == "distributed":
            assert self._redis_url is not None
            env.update(
                REDIS_URL=self._redis_url,
                CATENTIO_REDIS_NAMESPACE=self.namespace,
                CATENTIO_DB_SCHEMA=self.schema,
            )
        if name.startswith("poller"):
            env["CATENTIO_LOG_LEVEL"] = "INFO"  # outbox.swept lines count the re-rings
        if self.checkout is not None:
            env[PRODUCT_PATH] = str(self.checkout)
        env.update(self.env)
        if self.process_env is not None:
            env.update(self.process_env(name, index))
        return env

    def cli(self, *args: str) -> str:
        """Run one ``catentio-webhooks`` command to completion; its stdout."""
        completed = subprocess.run(
            [sys.executable, "-m", "tests.bench.instrumented", "-", "--", *args],
            env=self.environment("cli"),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"catentio-webhooks {' '.join(args)} exited {completed.returncode}: "
                f"{completed.stderr.strip()[-2000:]}"
            )
        return completed.stdout

    def add_endpoint(
        self,
        *,
        workspace: str,
        path: str,
        events: tuple[str, ...] = ("*",),
        max_concurrency: int | None = None,
    ) -> str:
        """``endpoints add --json`` for ``path`` on the receiver; the new endpoint's id."""
        args = ["endpoints", "add", "--workspace", workspace, "--url", self.receiver.url(path)]
        for event_type in events:
            args += ["--events", event_type]
        if max_concurrency is not None:
            args += ["--max-concurrency", str(max_concurrency)]
        created = json.loads(self.cli(*args, "--json"))
        return str(created["id"])

    def copy_endpoint(self, endpoint_id: str, count: int, path: str) -> list[str]:
        """``count`` copies of an endpoint, pointed at ``path``, inserted in SQL (a
        thousand ``endpoints add`` would take a thousand process start-ups)."""
        if count <= 0:
            return []
        table = self.table("endpoints")
        with self.engine.begin() as connection:
            row = connection.execute(table.select().where(table.c.id == endpoint_id)).one()
            template = dict(row._mapping)
            copies = [
                {**template, "id": f"ep_{uuid.uuid4().hex[:26]}", "url": self.receiver.url(path)}
                for _ in range(count)
            ]
            connection.execute(table.insert(), copies)
        return [c["id"] for c in copies]

    def table(self, name: str) -> sa.Table:
        """A product table, reflected (its columns are the product's business)."""
        if name in self._tables:
            return self._tables[name]
        names = sa.inspect(self.engine).get_table_names()
        matching = [n for n in names if n == name] or [n for n in names if n.endswith("_" + name)]
        if not matching:
            raise LookupError(f"no {name} table among {names}")
        self._tables[name] = sa.Table(matching[0], sa.MetaData(), autoload_with=self.engine)
        return self._tables[name]

    # -- the long-running processes ---------------------------------------------------

    def start(self) -> None:
        """``poller`` and the workers (distributed) or ``run`` (embedded)."""
        if self.kind == "embedded":
            self._spawn("run", 1, ["run", "--threads", str(self.threads)])
            return
        self._spawn("poller", 1, ["poller"])
        for index in range(1, self.workers + 1):
            self._spawn(f"worker{index}", index + 1, ["worker", "--threads", str(self.threads)])

    def _spawn(self, name: str, index: int, args: list[str]) -> None:
        counts = self.workdir / f"{name}.counts.json"
        log = self.workdir / f"{name}.log"
        counting = str(counts) if self.count_statements else "-"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tests.bench.instrumented", counting, "--", *args],
                env=self.environment(name, index),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(ProductProcess(name, popen, counts, log))

    def process(self, name: str) -> ProductProcess:
        (found,) = [p for p in self.processes if p.name == name]
        return found

    def stop(self) -> None:
        """SIGTERM every process (after releasing hung requests), then wait."""
        if not self.processes or self._stopped:
            return
        self.receiver.release(f"/hang/{self.tag}")
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in self.processes:
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        self._stopped = True

    def check_running(self) -> None:
        """Raise, with the end of its log, if a process has exited."""
        for process in self.processes:
            if process.popen.poll() is not None:
                tail = process.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{process.name} exited {process.popen.returncode}:\n{tail}")

    # -- measuring --------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """CPU and RSS of every process, their counters, their backends, the receiver."""
        self.check_running()
        stats = self.receiver.stats()
        harness = procstat.read(os.getpid())
        processes = {}
        for process in self.processes:
            sample = procstat.read(process.popen.pid)
            if sample is not None:
                processes[process.name] = sample
        return Snapshot(
            time=time.time(),
            processes=processes,
            counts={p.name: p.counts() for p in self.processes},
            backends=self._sampler.snapshot() if self._sampler is not None else {},
            receiver_cpu=float(stats["cpu"]),
            receiver_requests=sum(stats["requests"].values()),
            machine_busy=procstat.machine_busy(),
            harness_cpu=harness.cpu if harness is not None else 0.0,
        )

    def peak_rss(self) -> dict[str, int]:
        return {p.name: procstat.peak_rss(p.popen.pid) or 0 for p in self.processes}

    def succeeded(self, workspace: str | None = None) -> int:
        """Deliveries recorded as succeeded (in ``workspace``, or in all)."""
        table = self.table("deliveries")
        query = sa.select(sa.func.count()).where(table.c.status == "succeeded")
        if workspace is not None:
            query = query.where(table.c.workspace_id == workspace)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def wait_for(
        self, count: int, *, workspace: str | None = None, timeout: float, since: float
    ) -> float | None:
        """Wait until ``count`` deliveries have succeeded; the wall time it happened, or
        ``None`` after ``timeout`` seconds. Polls less often as time goes on (1 % of the
        elapsed time, at least every 0.1 s), so a long drain is not slowed by counting."""
        deadline = since + timeout
        table = self.table("deliveries")
        query = sa.select(sa.func.count()).where(table.c.status == "succeeded")
        if workspace is not None:
            query = query.where(table.c.workspace_id == workspace)
        while True:
            with self.engine.connect() as connection:
                done = int(connection.execute(query).scalar_one())
            now = time.time()
            if done >= count:
                return now
            if now > deadline:
                return None
            self.check_running()
            time.sleep(min(1.0, max(0.1, 0.01 * (now - since))))

    def broker_messages(self) -> int | None:
        """Messages stored in the broker (queued and delayed), or ``None`` (embedded)."""
        if not self._redis_url:
            return None
        client = redis.Redis.from_url(self._redis_url)
        try:
            return sum(
                int(client.hlen(key))
                for key in client.scan_iter(match=f"{self.namespace}:*.msgs", count=1000)
            )
        finally:
            client.close()

    # -- publishing -------------------------------------------------------------------

    def publish(
        self, groups: list[Group], *, before_commit: Callable[[], None] | None = None
    ) -> Published:
        """Publish every group's events in ONE transaction, with ``outbox.publish``, as a
        producer would: nothing is visible until the commit, so the measured window can
        start right before it. ``before_commit`` runs after the rows are flushed."""
        with Session(self.engine, expire_on_commit=False) as session:
            events: dict[str, list[Any]] = {}
            for group in groups:
                events.setdefault(group.workspace, []).extend(
                    publish(
                        session,
                        workspace_id=group.workspace,
                        type=group.type,
                        data=_data(n),
                    )
                    for n in range(group.count)
                )
            session.flush()
            if before_commit is not None:
                before_commit()
            committed_at = time.time()
            session.commit()
        return Published(
            committed_at=committed_at,
            ids={w: [e.id for e in evs] for w, evs in events.items()},
            bodies={w: [e.body for e in evs] for w, evs in events.items()},
        )

    def render_bodies(self, count: int) -> list[str]:
        """Bodies exactly like the benchmark's events, rendered by ``publish`` in a
        transaction that is rolled back (for a baseline that runs before them)."""
        with Session(self.engine, expire_on_commit=False) as session:
            events = [
                publish(session, workspace_id="ws_shape", type="bench.ok", data=_data(n))
                for n in range(count)
            ]
            bodies = [event.body for event in events]
            session.rollback()
        return bodies

    def publish_paced(self, workspace: str, *, rate: float, seconds: float) -> dict[str, float]:
        """One event per transaction, ``rate`` a second for ``seconds``, from a producer
        process of its own (:mod:`tests.bench.publisher`); the wall time right after each
        COMMIT, by event id (the commit→receipt clock starts there)."""
        url = self.engine.url.render_as_string(hide_password=False)
        return run_publisher(url, self.db_schema, workspace, rate, seconds, self.workdir, REPO)

    def first_attempts(self, workspace: str) -> list[tuple[str, float, float]]:
        """(event id, fan-out time, first attempt's start) of the workspace's deliveries,
        as wall-clock seconds."""
        deliveries, attempts = self.table("deliveries"), self.table("attempts")
        query = (
            sa.select(deliveries.c.event_id, deliveries.c.created_at, attempts.c.started_at)
            .join(attempts, attempts.c.delivery_id == deliveries.c.id)
            .where(deliveries.c.workspace_id == workspace, attempts.c.number == 1)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [(e, _epoch(created), _epoch(started)) for e, created, started in rows]


def _data(n: int) -> dict[str, Any]:
    return {"n": n, "pad": PAD}


def _epoch(value: Any) -> float:
    """A datetime column's value as epoch seconds (naive values are UTC, as on SQLite)."""
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())
