"""Secrets at rest and in flight: encrypted with Fernet, re-encryptable under a new key,
and never in a log line, an attempt record, an outbound header or CLI output, except
the one-time display at creation and rotation."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy import select

from outbox import Attempt, Endpoint
from outbox.database import make_engine, make_session_factory
from outbox.migrate import upgrade
from tests.support.cli import LOGGED, cli_env, logging_restored, run_cli
from tests.support.harness import Harness
from worker.demo.receiver import always
from worker.endpoints.registry import create_endpoint
from worker.endpoints.secretbox import SecretBox, generate_key, key_file_for, open_secret_box
from worker.errors import ConfigurationError


def test_secrets_are_stored_encrypted(harness: Harness) -> None:
    """The secrets column holds a Fernet token, never the secret or its key material."""
    created = harness.endpoint()
    with harness.runtime.engine.connect() as connection:
        raw = connection.execute(sa.text("SELECT secrets FROM endpoints")).scalar_one()
    text = raw if isinstance(raw, str) else json.dumps(raw)
    assert created.secret not in text
    assert created.secret.removeprefix("whsec_") not in text
    (entry,) = json.loads(text)
    assert entry["secret"].startswith("gAAAA")  # a Fernet token
    assert harness.runtime.box.decrypt(entry["secret"]) == created.secret


def test_ed25519_endpoints_keep_the_signing_key_encrypted(harness: Harness) -> None:
    """For v1a we keep the whsk_ (encrypted); the receiver is shown the whpk_."""
    created = harness.endpoint(scheme="v1a")
    assert created.secret.startswith("whpk_")
    (entry,) = harness.endpoint_row(created.endpoint.id).secrets
    assert harness.runtime.box.decrypt(entry["secret"]).startswith("whsk_")


def test_embedded_mode_generates_a_private_key_file_and_says_so(tmp_path: Path) -> None:
    """SQLite without CATENTIO_ENCRYPTION_KEYS: a key is generated into a 0600 file beside
    the database, announced in the log, and reused on the next start."""
    url = f"sqlite:///{tmp_path / 'hooks.sqlite3'}"
    with structlog.testing.capture_logs() as logs:
        first = open_secret_box((), url)
    path = key_file_for(url)
    assert path == tmp_path / "hooks.sqlite3.key" and path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    (entry,) = [e for e in logs if e["event"] == "secretbox.key_generated"]
    assert entry["path"] == str(path)
    assert path.read_text().strip() not in repr(logs)  # the key itself is not logged
    token = first.encrypt("whsec_x")
    with structlog.testing.capture_logs() as again:
        second = open_secret_box((), url)
    assert second.decrypt(token) == "whsec_x"
    assert again == []


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:5432/test", "postgres://u@db.example/hooks"]
)
def test_postgres_without_a_key_refuses_to_start(url: str) -> None:
    """Against PostgreSQL, no CATENTIO_ENCRYPTION_KEYS means no start (the secret box is
    opened before anything runs): a key living on one host only would lose every secret."""
    with pytest.raises(ConfigurationError, match="CATENTIO_ENCRYPTION_KEYS is required"):
        open_secret_box((), url)
    assert isinstance(open_secret_box((generate_key(),), url), SecretBox)


def test_reencrypt_moves_every_secret_to_the_newest_key(sqlite_url: str) -> None:
    """With keys "new,old", ``secrets reencrypt`` rewrites every secret under the new
    key: afterwards the new key alone decrypts them all and the old one none."""
    old, new = generate_key(), generate_key()
    engine = make_engine(sqlite_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    plain = []
    with sessions() as session, session.begin():
        for scheme in ("v1", "v1a", "v1"):
            created = create_endpoint(
                session,
                SecretBox([old]),
                workspace_id="ws_a",
                url="https://example.com/h",
                event_types=["*"],
                scheme=scheme,
            )
            plain.append(created.secret)
    result = run_cli(
        cli_env(sqlite_url, **LOGGED, CATENTIO_ENCRYPTION_KEYS=f"{new},{old}"),
        "secrets",
        "reencrypt",
    )
    assert result.exit_code == 0, result.output
    assert "re-encrypted 3 secrets" in result.stdout
    with sessions() as session:
        tokens = [e["secret"] for ep in session.scalars(select(Endpoint)) for e in ep.secrets]
    engine.dispose()
    assert len(tokens) == 3
    assert all(SecretBox([new]).decrypt(t).startswith(("whsec_", "whsk_")) for t in tokens)
    for token in tokens:
        with pytest.raises(ConfigurationError):
            SecretBox([old]).decrypt(token)


def test_no_secret_leaks_into_logs_attempts_headers_or_cli_output(
    make_harness: Any, sqlite_url: str
) -> None:
    """Across creation, rotation, failed and successful deliveries and every listing
    command, the secrets (HMAC, Ed25519 signing key) and custom header credentials
    appear only in the one-time output of ``endpoints add`` and ``rotate-secret``
    (stdout and the command's own log lines on stderr are both scanned)."""
    harness = make_harness(sqlite_url)
    env = cli_env(sqlite_url, **LOGGED)
    outputs: list[str] = []

    def cli(*args: str) -> Any:
        result = run_cli(env, *args)
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout + result.stderr)
        return result

    added = cli(
        "endpoints",
        "add",
        "--workspace",
        "ws_a",
        "--url",
        harness.receiver.base_url + "/hook",
        "--events",
        "*",
        "--header",
        "Authorization: Bearer cred-12345",
        "--json",
    )
    endpoint_id = json.loads(added.stdout)["id"]
    first = json.loads(added.stdout)["secret"]
    rotated = cli("endpoints", "rotate-secret", endpoint_id, "--json")
    second = json.loads(rotated.stdout)["secret"]
    ed = cli(
        "endpoints",
        "add",
        "--workspace",
        "ws_a",
        "--url",
        harness.receiver.base_url + "/ed",
        "--events",
        "*",
        "--scheme",
        "v1a",
        "--json",
    )
    ed_id = json.loads(ed.stdout)["id"]
    with logging_restored():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
        with structlog.testing.capture_logs() as logs:
            harness.receiver.route("/hook", secret=[first, second], behaviour=always(500))
            harness.receiver.route("/ed", secret=json.loads(ed.stdout)["secret"])
            ids = harness.deliveries(2)
            for delivery_id in ids:
                harness.deliver(delivery_id)
            harness.receiver.route("/hook", secret=[first, second])
            for delivery_id in ids:
                if harness.delivery(delivery_id).status == "pending":
                    harness.due(delivery_id)
    for args in (
        ("endpoints", "list", "--json"),
        ("endpoints", "show", endpoint_id),
        ("endpoints", "show", ed_id, "--json"),
        ("deliveries", "list", "--json"),
        ("deliveries", "show", ids[0], "--json"),
    ):
        cli(*args)
    signing_key = harness.runtime.box.decrypt(harness.endpoint_row(ed_id).secrets[0]["secret"])
    secrets = [first, second, signing_key, "cred-12345"]
    secrets += [s.split("_", 1)[1] for s in (first, second, signing_key)]

    with harness.runtime.sessions() as session:
        attempts = [vars(a) for a in session.scalars(select(Attempt))]
    received = [r.headers for r in harness.receiver.received()]
    assert len(attempts) >= 4 and len(received) == len(attempts)
    assert all(r.verified for r in harness.receiver.received())
    assert [e for e in logs if e["event"] == "delivery.attempted"]
    places = {
        "logs": repr(logs),
        "attempts": repr(attempts),
        "headers": repr(received),
        "listings": "".join(outputs[3:]),
    }
    for secret in secrets:
        for place, text in places.items():
            if place == "headers" and secret == "cred-12345":
                continue  # the endpoint's own header is meant to reach it
            assert secret not in text, f"a secret leaked into {place}"
    # Shown exactly once each, where it is meant to be.
    assert outputs[0].count(first) == 1 and outputs[1].count(second) == 1
    assert all(signing_key not in text for text in outputs)
