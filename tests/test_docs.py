"""The README's two commands are the ones CI and a newcomer actually run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shell_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run ends with the README's test command, character for character."""
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line]
    test_command = ci_lines[-1]
    assert test_command in shell_blocks(readme)
    assert "pytest" in test_command


def test_ci_lints_as_pyproject_configures_it_before_the_tests() -> None:
    """.ci/run installs the dev extra (ruff, mypy) and runs ruff check, ruff format
    --check and mypy without arguments of their own, before the test command."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    lint = ["ruff check .", "ruff format --check .", "mypy"]
    install = "python -m pip install -q -e './signing[ed25519]' -e '.[dev]'"
    assert all(command in lines for command in [install, *lint])
    positions = [lines.index(command) for command in [install, *lint]]
    assert positions == sorted(positions)
    assert positions[-1] < len(lines) - 1  # the tests come last
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev_extra = extras["optional-dependencies"]["dev"]
    assert "catentio-webhooks[test]" in dev_extra
    assert {"ruff", "mypy"} <= {re.split(r"[<>=\[ ]", dep)[0] for dep in dev_extra}


def test_readme_demo_command_runs_the_demo() -> None:
    """The README's first command installs both packages and runs the demo."""
    first = shell_blocks((ROOT / "README.md").read_text())[0]
    assert first == "python -m pip install ./signing . && catentio-webhooks demo"


def test_procfile_names_the_process_types() -> None:
    """release, poller, worker and web (the API), each a catentio-webhooks command."""
    kinds = dict(
        line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert set(kinds) == {"release", "poller", "worker", "web"}
    assert all(v.strip().startswith("catentio-webhooks ") for v in kinds.values())


def test_readmes_say_how_to_install_catentio_signing_from_this_repository() -> None:
    """No index serves catentio-signing yet: the READMEs never say `pip install
    catentio-signing` bare, and show how to install it from the repository instead."""
    for path in (ROOT / "README.md", ROOT / "signing" / "README.md"):
        text = path.read_text()
        assert not re.search(r"pip install '?catentio-signing", text), path
        assert "pip install ./signing" in text, path
