"""The package as receivers install it: standard library only, typed, documented examples."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import catentio_signing

CORE_MODULES = ["errors", "headers", "keys", "replay", "responses", "webhook"]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_needs_no_third_party_package() -> None:
    """Importing catentio_signing and verifying with HMAC loads only the standard library."""
    result = _run(
        """
        import sys
        already = set(sys.modules)  # whatever site start-up loaded (.pth hooks) is not ours
        import catentio_signing as cs
        headers = cs.sign_headers(cs.generate_secret(), msg_id="a", timestamp=1, payload=b"{}")
        cs.Webhook(cs.generate_secret()).sign("a", 1, b"{}")
        top = {name.partition(".")[0] for name in set(sys.modules) - already}
        foreign = top - set(sys.stdlib_module_names) - {"catentio_signing"}
        print(",".join(sorted(name for name in foreign if not name.startswith("_"))))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_package_works_when_cryptography_cannot_be_imported() -> None:
    """In a fresh interpreter without cryptography, HMAC works and whsk_ names the extra."""
    result = _run(
        """
        import sys
        sys.modules["cryptography"] = None  # as if the ed25519 extra were not installed
        import catentio_signing as cs
        secret = cs.generate_secret()
        headers = cs.sign_headers(secret, msg_id="a", timestamp=1, payload=b"{}")
        assert cs.Webhook(secret, clock=lambda: 1).verify(b"{}", headers) == {}
        try:
            cs.generate_keypair()
        except cs.MissingDependencyError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'catentio-signing[ed25519]'" in result.stdout


@pytest.mark.parametrize("name", ["flask", "fastapi", "django", "wsgi", "asgi"])
def test_framework_helpers_are_separate_submodules(name: str) -> None:
    """Each framework helper is its own importable submodule, not loaded by the package."""
    assert (
        f"catentio_signing.{name}"
        not in _run("import sys, catentio_signing; print(sorted(sys.modules))").stdout
    )
    assert importlib.import_module(f"catentio_signing.{name}").__doc__


def test_package_ships_py_typed() -> None:
    """The py.typed marker is present so type checkers use the annotations."""
    assert (Path(catentio_signing.__file__).parent / "py.typed").is_file()


def test_public_names_are_exported() -> None:
    """Everything in __all__ exists, including the names the worker imports."""
    for name in catentio_signing.__all__:
        assert hasattr(catentio_signing, name), name
    assert {"Webhook", "sign_headers", "generate_secret", "generate_keypair"} <= set(
        catentio_signing.__all__
    )
    assert {"WebhookVerificationError"} <= set(catentio_signing.__all__)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_docstring_examples_run(module: str) -> None:
    """The examples in each core module's docstrings are correct."""
    loaded = importlib.import_module(f"catentio_signing.{module}")
    failures, attempted = doctest.testmod(loaded, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
    assert attempted > 0
