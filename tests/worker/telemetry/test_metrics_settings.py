"""The metrics settings: off by default, a port, a host, opt-in endpoint labels."""

from __future__ import annotations

import pytest

from worker.errors import ConfigurationError
from worker.settings import Settings


def test_off_by_default_and_read_from_the_environment() -> None:
    """No CATENTIO_METRICS_PORT: no listener; the variables are read when set."""
    assert Settings.from_env({}).metrics_port is None
    assert Settings.from_env({}).metrics_endpoint_labels is False
    settings = Settings.from_env(
        {
            "CATENTIO_METRICS_PORT": "9108",
            "CATENTIO_METRICS_HOST": "0.0.0.0",
            "CATENTIO_METRICS_ENDPOINT_LABELS": "true",
        }
    )
    assert (settings.metrics_port, settings.metrics_host) == (9108, "0.0.0.0")
    assert settings.metrics_endpoint_labels is True


@pytest.mark.parametrize("value", ["70000", "-1", "http"])
def test_a_bad_port_is_refused_naming_the_variable(value: str) -> None:
    """A port outside 0-65535 or not a number: one error naming CATENTIO_METRICS_PORT."""
    with pytest.raises(ConfigurationError, match="CATENTIO_METRICS_PORT"):
        Settings.from_env({"CATENTIO_METRICS_PORT": value})
