"""Portal links, sessions and CSRF tokens: signed, expiring, bound, rotatable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from outbox.errors import InvalidWorkspaceId, ValidationError
from worker.errors import ConfigurationError
from worker.portal.errors import CsrfRefused, LinkExpired, LinkRefused, SessionRefused
from worker.portal.tokens import Tokens

SECRET = "s" * 40
OTHER = "o" * 40
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def tokens() -> Tokens:
    return Tokens((SECRET,))


def test_a_link_opens_for_its_workspace_until_it_expires(tokens: Tokens) -> None:
    """The link's grant names its workspace and mode; one second after expiry it is refused."""
    token, grant = tokens.mint_link("ws_a", ttl=timedelta(hours=1), read_only=True, now=NOW)
    opened = tokens.open_link(token, now=NOW + timedelta(minutes=59))
    assert (opened.workspace_id, opened.read_only) == ("ws_a", True)
    assert opened.expires_at == grant.expires_at == NOW + timedelta(hours=1)
    with pytest.raises(LinkExpired):
        tokens.open_link(token, now=NOW + timedelta(hours=1, seconds=1))


def test_a_tampered_link_is_refused(tokens: Tokens) -> None:
    """Changing any character of the token, or signing with another secret, is refused."""
    token, _ = tokens.mint_link("ws_a", ttl=timedelta(hours=1), read_only=False, now=NOW)
    for i in (0, len(token) // 2, len(token) - 1):
        altered = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(LinkRefused):
            tokens.open_link(altered, now=NOW)
    forged, _ = Tokens((OTHER,)).mint_link("ws_a", ttl=timedelta(hours=1), read_only=False, now=NOW)
    with pytest.raises(LinkRefused):
        tokens.open_link(forged, now=NOW)
    for junk in ("", "not-a-token", "a.b.c"):
        with pytest.raises(LinkRefused):
            tokens.open_link(junk, now=NOW)


def test_links_and_sessions_cannot_stand_in_for_each_other(tokens: Tokens) -> None:
    """A link token is no session cookie and a session cookie is no link (separate salts)."""
    link, grant = tokens.mint_link("ws_a", ttl=timedelta(hours=1), read_only=False, now=NOW)
    cookie, _ = tokens.open_session(grant, ttl=timedelta(hours=8), now=NOW)
    with pytest.raises(SessionRefused):
        tokens.session(link, now=NOW)
    with pytest.raises(LinkRefused):
        tokens.open_link(cookie, now=NOW)


def test_a_session_lasts_its_own_ttl_and_keeps_the_links_mode(tokens: Tokens) -> None:
    """The session expires ``ttl`` after opening, whatever the link's remaining life."""
    _, grant = tokens.mint_link("ws_b", ttl=timedelta(minutes=5), read_only=True, now=NOW)
    cookie, session = tokens.open_session(grant, ttl=timedelta(hours=8), now=NOW)
    restored = tokens.session(cookie, now=NOW + timedelta(hours=7))
    assert restored == session
    assert (restored.grant.workspace_id, restored.grant.read_only) == ("ws_b", True)
    with pytest.raises(SessionRefused, match="expired"):
        tokens.session(cookie, now=NOW + timedelta(hours=8))
    with pytest.raises(SessionRefused):
        tokens.session(None, now=NOW)
    with pytest.raises(SessionRefused):
        tokens.session(cookie[:-2], now=NOW)


def test_csrf_tokens_are_bound_to_their_session(tokens: Tokens) -> None:
    """A session's own token passes; another session's, a forged or a missing one does not."""
    _, grant = tokens.mint_link("ws_a", ttl=timedelta(hours=1), read_only=False, now=NOW)
    _, one = tokens.open_session(grant, ttl=timedelta(hours=1), now=NOW)
    _, two = tokens.open_session(grant, ttl=timedelta(hours=1), now=NOW)
    tokens.check_csrf(one, tokens.csrf_token(one))
    with pytest.raises(CsrfRefused, match="another session"):
        tokens.check_csrf(one, tokens.csrf_token(two))
    with pytest.raises(CsrfRefused, match="missing"):
        tokens.check_csrf(one, None)
    with pytest.raises(CsrfRefused):
        tokens.check_csrf(one, Tokens((OTHER,)).csrf_token(one))


def test_rotating_the_secret_keeps_sessions_signed_with_the_old_one(tokens: Tokens) -> None:
    """With ``new,old`` configured, old cookies still open and new ones use the new secret."""
    _, grant = tokens.mint_link("ws_a", ttl=timedelta(hours=1), read_only=False, now=NOW)
    old_cookie, _ = tokens.open_session(grant, ttl=timedelta(hours=1), now=NOW)
    rotated = Tokens((OTHER, SECRET))
    assert rotated.session(old_cookie, now=NOW).grant.workspace_id == "ws_a"
    new_cookie, _ = rotated.open_session(grant, ttl=timedelta(hours=1), now=NOW)
    assert Tokens((OTHER,)).session(new_cookie, now=NOW).grant.workspace_id == "ws_a"
    with pytest.raises(SessionRefused):
        tokens.session(new_cookie, now=NOW)


def test_bad_secrets_and_bad_links_are_refused_clearly() -> None:
    """No secret or a short one is a configuration error; a bad workspace id or a
    lifetime that is not positive is a validation error."""
    with pytest.raises(ConfigurationError):
        Tokens(())
    with pytest.raises(ConfigurationError, match="at least 32"):
        Tokens(("short",))
    tokens = Tokens((SECRET,))
    with pytest.raises(InvalidWorkspaceId):
        tokens.mint_link("ws a;drop", ttl=timedelta(hours=1), read_only=False, now=NOW)
    with pytest.raises(ValidationError):
        tokens.mint_link("ws_a", ttl=timedelta(0), read_only=False, now=NOW)
