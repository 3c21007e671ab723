"""Secret rotation: a new secret signs at once, the old one keeps signing through the
grace period, so a receiver holding either verifies; afterwards only the new one."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from catentio_signing import Webhook, WebhookVerificationError
from outbox import DeliveryStatus
from outbox.errors import ValidationError
from tests.support.cli import LOGGED, cli_env, run_cli
from tests.support.harness import Harness
from worker.demo.receiver import Received
from worker.endpoints.rotation import MAX_ACTIVE_SECRETS, rotate_secret
from worker.errors import Conflict, EndpointNotFound

GRACE = timedelta(hours=24)


def rotate(harness: Harness, endpoint_id: str, **kwargs: Any) -> str:
    with harness.runtime.sessions() as session, session.begin():
        rotation = rotate_secret(
            session, harness.runtime.box, endpoint_id, now=harness.clock.now, **kwargs
        )
    return rotation.secret


def send_one(harness: Harness) -> Received:
    (delivery_id,) = harness.deliveries()
    assert harness.deliver(delivery_id).status == DeliveryStatus.SUCCEEDED
    return harness.receiver.received()[-1]


def verifies(secret: str, request: Received) -> bool:
    # The harness clock is not the receiver's: the timestamp check is not on trial here.
    try:
        Webhook(secret, tolerance=10**9).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


@pytest.mark.parametrize("scheme", ["v1", "v1a"])
def test_both_secrets_sign_during_the_grace_and_only_the_new_one_after(
    harness: Harness, scheme: str
) -> None:
    """After a rotation every request carries two signatures: a receiver holding only
    the old secret and one holding only the new secret both verify it. Once the grace
    has passed, only the new one does. (v1a: the receiver holds whpk_ public keys.)"""
    created = harness.endpoint(scheme=scheme, behaviour=None)
    harness.receiver.route("/hook")  # verification is done below, key by key
    old = created.secret
    before = send_one(harness)
    assert verifies(old, before)
    assert len(before.headers["webhook-signature"].split()) == 1

    new = rotate(harness, created.endpoint.id, grace=GRACE)
    assert new != old and new.startswith("whpk_" if scheme == "v1a" else "whsec_")
    during = send_one(harness)
    signatures = during.headers["webhook-signature"].split()
    assert len(signatures) == 2 and all(s.startswith(f"{scheme},") for s in signatures)
    assert verifies(old, during) and verifies(new, during)

    harness.clock.advance(GRACE + timedelta(seconds=1))
    after = send_one(harness)
    assert len(after.headers["webhook-signature"].split()) == 1
    assert verifies(new, after) and not verifies(old, after)


def test_a_receiver_verifying_live_with_either_secret_accepts_rotated_requests(
    harness: Harness,
) -> None:
    """The receiver verifies in full (signature and timestamp) holding only the old
    secret, then only the new one: both accept every request sent during the grace."""
    created = harness.endpoint()
    new = rotate(harness, created.endpoint.id, grace=GRACE)
    for secret in (created.secret, new, created.secret):
        harness.receiver.set_secret("/hook", secret)
        send_one(harness)
    got = harness.receiver.received()
    assert len(got) == 3
    assert all(r.verified for r in got), [r.error for r in got]


def test_a_zero_grace_replaces_the_secret_at_once(harness: Harness) -> None:
    """``--grace 0``: the old secret stops signing immediately."""
    created = harness.endpoint()
    harness.receiver.route("/hook")
    new = rotate(harness, created.endpoint.id, grace=timedelta(0))
    request = send_one(harness)
    assert verifies(new, request) and not verifies(created.secret, request)
    assert len(harness.endpoint_row(created.endpoint.id).secrets) == 1


def test_switching_scheme_sends_both_kinds_during_the_grace(harness: Harness) -> None:
    """Rotating a v1 endpoint to v1a sends a v1 and a v1a signature during the grace,
    so HMAC receivers keep working while they move to Ed25519."""
    created = harness.endpoint()
    harness.receiver.route("/hook")
    public = rotate(harness, created.endpoint.id, grace=GRACE, scheme="v1a")
    request = send_one(harness)
    versions = sorted(s.split(",")[0] for s in request.headers["webhook-signature"].split())
    assert versions == ["v1", "v1a"]
    assert verifies(created.secret, request) and verifies(public, request)
    assert harness.endpoint_row(created.endpoint.id).scheme == "v1a"


def test_rotation_refusals(harness: Harness) -> None:
    """Unknown endpoints, negative graces and rotating faster than receivers can follow
    are refused."""
    created = harness.endpoint()
    with pytest.raises(EndpointNotFound):
        rotate(harness, "ep_missing")
    with pytest.raises(ValidationError):
        rotate(harness, created.endpoint.id, grace=timedelta(seconds=-1))
    for _ in range(MAX_ACTIVE_SECRETS - 1):
        rotate(harness, created.endpoint.id, grace=GRACE)
    with pytest.raises(Conflict):
        rotate(harness, created.endpoint.id, grace=GRACE)
    rotate(harness, created.endpoint.id, grace=timedelta(0))  # the way out
    assert len(harness.endpoint_row(created.endpoint.id).secrets) == 1


def test_rotate_secret_command_shows_the_new_secret_once(sqlite_url: str) -> None:
    """``endpoints rotate-secret ID --grace 2h`` prints the new secret once and when the
    old one stops signing; ``--scheme v1a`` prints the receiver's whpk_; an unknown id
    exits 3."""
    env = cli_env(sqlite_url, **LOGGED)
    added = run_cli(
        env,
        "endpoints",
        "add",
        "--workspace",
        "ws_a",
        "--url",
        "https://example.com/hook",
        "--events",
        "*",
        "--json",
    )
    assert added.exit_code == 0, added.output
    endpoint_id = json.loads(added.stdout)["id"]

    rotated = run_cli(env, "endpoints", "rotate-secret", endpoint_id, "--grace", "2h")
    assert rotated.exit_code == 0, rotated.output
    (line,) = [x for x in rotated.stdout.splitlines() if "whsec_" in x]
    new = line.rsplit(" ", 1)[1]
    assert rotated.stdout.count(new) == 1
    assert "keeps signing until" in rotated.stdout

    ed = run_cli(env, "endpoints", "rotate-secret", endpoint_id, "--scheme", "v1a", "--json")
    view = json.loads(ed.stdout)
    assert view["scheme"] == "v1a" and view["secret"].startswith("whpk_")
    assert "whsk_" not in ed.stdout + ed.stderr

    missing = run_cli(env, "endpoints", "rotate-secret", "ep_nope")
    assert missing.exit_code == 3
