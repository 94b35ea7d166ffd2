"""vmpooler's ``dummy`` provider: any password that differs from the user name is accepted.

For development only; the configuration refuses it unless ``VMPOOLER_DEBUG`` is true (1, true,
yes or on), and building it logs a warning.
"""

from __future__ import annotations

__all__ = ["DummyAuthenticator"]


class DummyAuthenticator:
    async def authenticate(self, user: str, password: str) -> bool:
        """True iff ``password != user``; an empty user name is refused (tokens need an owner)."""
        if not isinstance(user, str) or not isinstance(password, str) or not user:
            return False
        return password != user
