"""The JSON log stream: who wrote each line, and no secret however deeply it hides."""

from __future__ import annotations

import io
import json
import os
import socket

import structlog

from worker.logs import configure_logging, scrub_secrets

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = "whsk_c2VjcmV0LXNpZ25pbmcta2V5LWJ5dGVzLTMyIQ=="


def test_scrubber_recurses_into_nested_dicts_lists_and_tuples() -> None:
    """A secret inside a dict inside a list inside a field is redacted; the rest stays."""
    event = {
        "event": "endpoint.updated",
        "changes": {"headers": [{"x-token": f"Bearer {SECRET}"}, ("plain", KEY)]},
        "secrets": [SECRET, {"deeper": {"deepest": [KEY]}}],
        "count": 3,
        "url": "https://example.com/hook",
    }
    scrubbed = scrub_secrets(None, "info", dict(event))
    text = json.dumps(scrubbed)
    assert "MfKQ9r8" not in text and "c2VjcmV0" not in text
    assert scrubbed["changes"]["headers"][0]["x-token"] == "Bearer whsec_[redacted]"
    assert scrubbed["changes"]["headers"][1] == ("plain", "whsk_[redacted]")
    assert scrubbed["secrets"][1]["deeper"]["deepest"] == ["whsk_[redacted]"]
    assert scrubbed["count"] == 3 and scrubbed["url"] == "https://example.com/hook"


def test_scrubber_redacts_secrets_used_as_dict_keys() -> None:
    """Even a secret used as a key of a nested dict does not reach the line."""
    scrubbed = scrub_secrets(None, "info", {"by_secret": {SECRET: 1}})
    assert scrubbed["by_secret"] == {"whsec_[redacted]": 1}


def test_every_line_names_process_host_and_pid() -> None:
    """configure_logging(process=…) puts process, host and pid on every JSON line, and
    the scrubber still runs on nested values in the configured pipeline."""
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream, process="poller")
    try:
        log = structlog.get_logger("test")
        log.info("first", nested={"list": [SECRET]})
        log.warning("second")
    finally:
        configure_logging(fmt="json", stream=io.StringIO())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["first", "second"]
    for line in lines:
        assert line["process"] == "poller"
        assert line["host"] == socket.gethostname()
        assert line["pid"] == os.getpid()
    assert lines[0]["nested"] == {"list": ["whsec_[redacted]"]}
