"""Endpoint secrets, encrypted at rest with Fernet (``cryptography``).

``CATENTIO_ENCRYPTION_KEYS`` holds one or more Fernet keys, newest first: the newest
encrypts, all of them decrypt (``MultiFernet``), and ``catentio-webhooks secrets
reencrypt`` moves every row to the newest key. Embedded mode without a key generates
one into a 0600 file beside the SQLite database and says so; PostgreSQL without a key
is refused, because a key that lives only on one host would lose every secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from outbox.database import lock_for_write, normalize_url
from outbox.models import Endpoint
from worker import keyfiles
from worker.errors import ConfigurationError

KEY_FILE_SUFFIX = ".key"
"""Embedded mode's generated encryption key lives in ``<database>.key``."""


class SecretBox:
    """Encrypts and decrypts endpoint secrets."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ConfigurationError("at least one encryption key is needed")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                "CATENTIO_ENCRYPTION_KEYS must hold Fernet keys (32 url-safe base64 bytes); "
                "make one with `catentio-webhooks secrets generate-key`"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        """Encrypt with the newest key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Decrypt with whichever key made ``token``."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "an endpoint secret cannot be decrypted with any of CATENTIO_ENCRYPTION_KEYS"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError("a secret cannot be decrypted with any key given") from exc


def reencrypt_secrets(session: Session, box: SecretBox) -> int:
    """Re-encrypt every endpoint secret under the box's newest key, in the caller's
    transaction (the endpoints' rows locked); returns how many secrets were."""
    lock_for_write(session)
    count = 0
    for endpoint in session.scalars(select(Endpoint).with_for_update()):
        endpoint.secrets = [
            {**entry, "secret": box.rotate(entry["secret"])} for entry in endpoint.secrets
        ]
        count += len(endpoint.secrets)
    return count


def generate_key() -> str:
    """A new Fernet key."""
    return Fernet.generate_key().decode()


def key_file_for(database_url: str) -> Path | None:
    """Where embedded mode keeps its generated key: beside the SQLite file."""
    return keyfiles.key_file_for(database_url, KEY_FILE_SUFFIX)


def open_secret_box(keys: Sequence[str], database_url: str) -> SecretBox:
    """The secret box for these settings, generating the embedded key file if needed."""
    if keys:
        return SecretBox(keys)
    url = normalize_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise ConfigurationError(
            "CATENTIO_ENCRYPTION_KEYS is required with a PostgreSQL database: endpoint "
            "secrets are encrypted at rest (make a key with "
            "`catentio-webhooks secrets generate-key`)"
        )
    path = key_file_for(database_url)
    if path is None:  # in-memory SQLite: the secrets die with the process anyway
        return SecretBox([generate_key()])
    key = keyfiles.read_or_generate(
        path, generate_key, name="secretbox", variable="CATENTIO_ENCRYPTION_KEYS"
    )
    return SecretBox([key])
