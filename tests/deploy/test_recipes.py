"""The deploy recipes cannot rot: the Procfile, the systemd units, the container files
and compose run the same, real commands, and the dashboard and alerts use only metrics
that the processes export."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml

from tests.support.scrape import metered
from tests.support.waiting import wait_until
from worker.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\b(?:catentio_webhooks|process|python)_[a-z0-9_]+\b")


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines if line)}


def unit_commands(key: str) -> dict[str, list[str]]:
    """{unit file name: [its KEY= commands, without the binary's directory]}."""
    units: dict[str, list[str]] = {}
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        lines = path.read_text().splitlines()
        units[path.name] = [
            line.split("=", 1)[1].strip().removeprefix("/usr/local/bin/")
            for line in lines
            if line.startswith(f"{key}=")
        ]
    return units


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def compose_commands() -> dict[str, str]:
    """{service: command} for the services that run catentio-webhooks."""
    return {
        name: shlex.join(service["command"])
        for name, service in compose()["services"].items()
        if service.get("command", [None])[0] == "catentio-webhooks"
    }


def is_real_command(command: str) -> bool:
    """Whether ``command`` names a catentio-webhooks (sub)command that exists."""
    words = shlex.split(command)
    if words[:1] != ["catentio-webhooks"]:
        return False
    current: click.Command = main
    for word in words[1:]:
        if word.startswith("-"):
            break
        if not isinstance(current, click.Group):
            return True  # an argument of a command
        found = current.get_command(click.Context(current), word)
        if found is None:
            return False
        current = found
    return not isinstance(current, click.Group)


def test_procfile_units_and_compose_run_the_same_real_commands() -> None:
    """Every process type of the Procfile has a systemd unit and a compose service with
    the same command, nothing runs that the Procfile does not name, and each is a real
    CLI command."""
    expected = set(procfile().values())
    in_units = {c for commands in unit_commands("ExecStart").values() for c in commands}
    in_compose = set(compose_commands().values())
    assert in_units == expected
    assert in_compose == expected
    assert all(is_real_command(c) for c in expected), expected
    assert not is_real_command("catentio-webhooks no-such-command")
    assert not is_real_command("catentio-webhooks db")  # a group, not a command


def test_long_running_units_check_health_before_starting() -> None:
    """Every unit but the one-shot release step runs `catentio-webhooks check` first and
    serves metrics on a port of its own."""
    pre = unit_commands("ExecStartPre")
    for unit in unit_commands("ExecStart"):
        text = (DEPLOY / "systemd" / unit).read_text()
        if "Type=oneshot" in text:
            continue
        assert pre[unit] == ["catentio-webhooks check"], unit
        assert re.search(r"^Environment=CATENTIO_METRICS_PORT=(\d+|%i)$", text, re.M), unit
    assert all(is_real_command(c) for commands in pre.values() for c in commands)


def test_compose_runs_two_workers_and_prometheus_scrapes_every_process() -> None:
    """Two worker replicas, the release step first, and Prometheus configured to scrape
    each long-running service and load the alert rules."""
    services = compose()["services"]
    assert services["worker"]["deploy"]["replicas"] == 2
    commands = compose_commands()
    long_running = {name for name, c in commands.items() if name != "release"}
    for name in long_running:
        condition = services[name]["depends_on"]["release"]["condition"]
        assert condition == "service_completed_successfully"
        assert services[name]["environment"]["CATENTIO_METRICS_PORT"] == "9100"
    assert {"postgres", "redis", "prometheus"} <= set(services)
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        name
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    assert scraped == long_running
    assert all((DEPLOY / "prometheus" / rules).exists() for rules in config["rule_files"])


def test_container_is_non_root_with_check_as_healthcheck() -> None:
    """The image runs as an unprivileged user, checks health with `check`, and its
    default command is one of the process types."""
    text = (DEPLOY / "container" / "Containerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    health = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])", text, re.M | re.S)
    assert health is not None
    assert shlex.join(json.loads(health.group(1))) == "catentio-webhooks check"
    default = re.findall(r"^CMD (\[.*\])", text, re.M)[-1]
    assert shlex.join(json.loads(default)) in set(procfile().values())


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "catentio-webhooks.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_alerts_cover_what_the_issue_asks_for() -> None:
    """Outbox lag, a growing backlog, the failure rate, open circuits and our own
    failures each have a rule with a severity and a summary."""
    rules = alert_rules()
    by_metric = " ".join(rule["expr"] for rule in rules)
    for needed in (
        "catentio_webhooks_outbox_lag_seconds",
        "deriv(max(catentio_webhooks_deliveries_due)",
        "catentio_webhooks_attempts_total{outcome!=",
        "catentio_webhooks_endpoints_circuit_open",
        "catentio_webhooks_own_failures_total",
    ):
        assert needed in by_metric
    for rule in rules:
        assert rule["alert"].startswith("CatentioWebhooks")
        assert rule["labels"]["severity"] in ("page", "warn", "info")
        assert rule["annotations"]["summary"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The metric names real processes export, by process: a fresh embedded `run`, and
    an `api` serving them on its own port (CATENTIO_API_METRICS) once it answered a
    request, with no metrics port of its own."""
    folder = tmp_path_factory.mktemp("exported")
    env = {"DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}"}
    with metered(env, "run", "--threads", "1", "--no-api") as running:
        run = running.families()
    api_env = {**env, "CATENTIO_API_METRICS": "true", "CATENTIO_METRICS_PORT": ""}
    with metered(api_env, "api", "--port", "0", listening_event="api.started") as api:
        assert httpx.get(f"{api.base_url}/v1/system/health", timeout=10).status_code == 200
        assert wait_until(lambda: "catentio_webhooks_api_requests_total" in api.families())
        served = api.families()
    assert not [line for line in api.lines if line.get("event") == "metrics.listening"]
    return {"run": run, "api": served}


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_metric_used_is_exported(source: str, exported: dict[str, set[str]]) -> None:
    """Each metric name in the dashboard's queries and the alert rules is one a running
    process exports, so neither can silently go blank after a rename; the API's own
    figures come from the API process."""
    exprs = dashboard_expressions() if source == "dashboard" else [r["expr"] for r in alert_rules()]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert len(used) >= 6
    assert used - (exported["run"] | exported["api"]) == set()
    api_metrics = {name for name in used if name.startswith("catentio_webhooks_api_")}
    assert api_metrics, f"the {source} says nothing about the API"
    assert api_metrics <= exported["api"]
    assert not api_metrics & exported["run"]  # `run --no-api` serves no API


def test_systemd_metrics_ports_do_not_collide() -> None:
    """The fixed metrics ports of the units and the worker instances the docs suggest
    are all different, so the units can run side by side on one host."""
    fixed = [
        int(port)
        for commands in unit_commands("Environment").values()
        for port in re.findall(r"^CATENTIO_METRICS_PORT=(\d+)$", "\n".join(commands), re.M)
    ]
    texts = [p.read_text() for p in (DEPLOY / "systemd").glob("*.service")]
    texts.append((ROOT / "docs" / "operating-observability.md").read_text())
    instances = {
        int(port) for text in texts for port in re.findall(r"catentio-webhooks-worker@(\d+)", text)
    }
    assert len(fixed) == 2 and instances
    assert len(set(fixed)) == len(fixed)
    assert not set(fixed) & instances
