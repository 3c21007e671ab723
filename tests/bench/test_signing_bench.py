"""Micro-benchmark: catentio_signing's verify against standardwebhooks' on a 1 KiB body.

Both verifiers check the same signed request in the same run. The pytest-benchmark table
compares them; ``test_verify_is_not_slower_than_standardwebhooks`` prints the ratio.
"""

from __future__ import annotations

import json
import time
import timeit
from typing import Any

import pytest
import standardwebhooks

from catentio_signing import Webhook, generate_secret, sign_headers

pytestmark = pytest.mark.bench

SECRET = generate_secret()


def _envelope(padding: int) -> bytes:
    event = {
        "data": {
            "id": "evt_01HZX3J5Q8R0K2M4N6P8S0T2V4",
            "type": "run.succeeded",
            "workspaceId": "ws_01HZX3J5Q8",
            "createdAt": "2026-01-01T00:00:00Z",
            "data": {"runId": "run_1", "note": "x" * padding},
        },
        "error": None,
        "meta": {"requestId": "req_1", "timestamp": "2026-01-01T00:00:00Z"},
    }
    return json.dumps(event, separators=(",", ":")).encode()


BODY = _envelope(1024 - len(_envelope(0)))
assert len(BODY) == 1024
EXPECTED = json.loads(BODY)
# Real clock: standardwebhooks always checks the timestamp against the current time.
HEADERS = sign_headers(SECRET, msg_id="evt_bench", timestamp=int(time.time()), payload=BODY)
OURS = Webhook(SECRET)
THEIRS = standardwebhooks.Webhook(SECRET)


@pytest.mark.benchmark(group="verify 1 KiB")
def test_catentio_signing_verify(benchmark: Any) -> None:
    """catentio_signing.Webhook.verify on a 1 KiB body."""
    assert benchmark(OURS.verify, BODY, HEADERS) == EXPECTED


@pytest.mark.benchmark(group="verify 1 KiB")
def test_standardwebhooks_verify(benchmark: Any) -> None:
    """standardwebhooks.Webhook.verify on the same request."""
    assert benchmark(THEIRS.verify, BODY, HEADERS) == EXPECTED


def test_verify_is_not_slower_than_standardwebhooks(capsys: pytest.CaptureFixture[str]) -> None:
    """Best-of-7 per-call time of ours divided by theirs is at most 1 (printed as the ratio)."""

    def best(verify: Any) -> float:
        runs = timeit.repeat(lambda: verify(BODY, HEADERS), number=5_000, repeat=7)
        return min(runs) / 5_000

    ours, theirs = best(OURS.verify), best(THEIRS.verify)
    ratio = ours / theirs
    with capsys.disabled():
        print(
            f"\nverify 1 KiB: catentio_signing {ours * 1e6:.2f} us, "
            f"standardwebhooks {theirs * 1e6:.2f} us, ratio {ratio:.2f}"
        )
    assert ratio <= 1.0
