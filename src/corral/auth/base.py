"""What every authentication backend offers: one coroutine that says yes or no."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["AuthUnavailable", "Authenticator"]


@runtime_checkable
class Authenticator(Protocol):
    """Checks a user name and password (HTTP basic auth when a token is requested)."""

    async def authenticate(self, user: str, password: str) -> bool:
        """True if the credentials are good, False if not (wrong, unknown, empty, malformed).

        Raises :class:`AuthUnavailable` when the answer cannot be known (backend unreachable,
        TLS failure, misconfigured service account); the API should answer 503, not 401.
        """
        ...


class AuthUnavailable(Exception):
    """The authentication backend could not be asked.

    The message names the server (``host:port``) and what failed; it never contains a
    password or token. ``server`` is the ``host:port`` alone.
    """

    def __init__(self, message: str, *, server: str = "") -> None:
        super().__init__(message)
        self.server = server
