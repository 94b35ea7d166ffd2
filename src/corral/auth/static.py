"""The ``static`` provider (corral's own): users and PBKDF2 password hashes from the config.

::

    :auth:
      :provider: static
      :users:
        alice: pbkdf2_sha256$600000$<salt>$<hash>    # python -m corral.auth.passwords

Every hash is checked when the authenticator is built (a bad one is a ValueError naming the
user). An unknown user costs the same PBKDF2 work as a wrong password (a dummy hash with the
highest configured iteration count is checked), so response times do not reveal who exists.
PBKDF2 runs in the authenticator's own executor of ``workers`` threads (``:auth:
login_workers``), never on the event loop nor in the default executor, so that a burst of logins
uses at most that many cores; :attr:`StaticAuthenticator.stats` counts the checks.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pydantic import SecretStr

from corral.auth.passwords import hash_password, parse_password_hash, verify_password

__all__ = ["StaticAuthenticator", "VerifyStats"]


@dataclass(frozen=True)
class VerifyStats:
    active: int  # password checks running now
    peak: int  # most that ever ran at once
    total: int  # checks run so far


class StaticAuthenticator:
    def __init__(self, users: Mapping[str, SecretStr | str], *, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
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
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="corral-login")
        self._lock = threading.Lock()
        self._active = self._peak = self._total = 0

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._hashes)

    @property
    def stats(self) -> VerifyStats:
        with self._lock:
            return VerifyStats(active=self._active, peak=self._peak, total=self._total)

    async def authenticate(self, user: str, password: str) -> bool:
        if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
            return False
        encoded = self._hashes.get(user)
        loop = asyncio.get_running_loop()
        if encoded is None:
            await loop.run_in_executor(self._executor, self._verify, password, self._dummy)
            return False
        return await loop.run_in_executor(self._executor, self._verify, password, encoded)

    def _verify(self, password: str, encoded: str) -> bool:
        with self._lock:
            self._active += 1
            self._total += 1
            self._peak = max(self._peak, self._active)
        try:
            return verify_password(password, encoded)
        finally:
            with self._lock:
                self._active -= 1
