"""The ``static`` provider (corral's own): users and PBKDF2 password hashes from the config.

::

    :auth:
      :provider: static
      :users:
        alice: pbkdf2_sha256$600000$<salt>$<hash>    # python -m corral.auth.passwords

Every hash is checked when the authenticator is built (a bad one is a ValueError naming the
user). An unknown user costs the same PBKDF2 work as a wrong password (a dummy hash with the
highest configured iteration count is checked), so response times do not reveal who exists.
PBKDF2 runs in a worker thread to keep the event loop free.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping

from pydantic import SecretStr

from corral.auth.passwords import hash_password, parse_password_hash, verify_password

__all__ = ["StaticAuthenticator"]


class StaticAuthenticator:
    def __init__(self, users: Mapping[str, SecretStr | str]) -> None:
        hashes: dict[str, str] = {}
        problems: list[str] = []
        iterations = 1
        for user, secret in users.items():
            encoded = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            try:
                iterations = max(iterations, parse_password_hash(encoded).iterations)
            except ValueError as exc:
                problems.append(f"auth.users.{user}: {exc}")
                continue
            hashes[user] = encoded
        if problems:
            raise ValueError("\n".join(problems))
        self._hashes = hashes
        # A hash of a random password nobody knows, as costly as the costliest real one.
        self._dummy = hash_password(secrets.token_urlsafe(32), iterations=iterations)

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._hashes)

    async def authenticate(self, user: str, password: str) -> bool:
        if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
            return False
        encoded = self._hashes.get(user)
        if encoded is None:
            await asyncio.to_thread(verify_password, password, self._dummy)
            return False
        return await asyncio.to_thread(verify_password, password, encoded)
