"""Who may create tokens: authentication backends (ldap, static, dummy) and token helpers.

``build_authenticator(settings.auth)`` gives an :class:`Authenticator` (the backend behind a
:class:`LoginGuard`); its
``await authenticate(user, password)`` is True/False, or raises :class:`AuthUnavailable`
when the backend cannot answer. Nothing here logs or raises with a password or token in it.
"""

from __future__ import annotations

import logging

from corral.auth.base import Authenticator, AuthUnavailable
from corral.auth.dummy import DummyAuthenticator
from corral.auth.guard import LoginGuard, LoginLimits, LoginRefused
from corral.auth.ldap import LdapAuthenticator
from corral.auth.passwords import check_password_hash, hash_password, verify_password
from corral.auth.settings import AuthSettings
from corral.auth.static import StaticAuthenticator
from corral.auth.tokens import TOKEN_RE, hash_token, new_token, same_hash, token_hint

__all__ = [
    "TOKEN_RE",
    "AuthUnavailable",
    "Authenticator",
    "DummyAuthenticator",
    "LdapAuthenticator",
    "LoginGuard",
    "LoginLimits",
    "LoginRefused",
    "StaticAuthenticator",
    "build_authenticator",
    "check_password_hash",
    "hash_password",
    "hash_token",
    "new_token",
    "same_hash",
    "token_hint",
    "verify_password",
]

log = logging.getLogger("corral.auth")


def build_authenticator(settings: AuthSettings) -> LoginGuard:
    """The backend ``settings.provider`` names, behind a :class:`LoginGuard` (bounded checks,
    backoff of repeated failures); ValueError if its settings are unusable.

    The dummy provider's VMPOOLER_DEBUG guard is the configuration loader's job; building it
    logs a warning, since it lets anyone in.
    """
    backend: Authenticator
    if settings.provider == "ldap":
        if settings.ldap is None:
            raise ValueError("auth.ldap: required for the ldap provider (host, base, user_object)")
        backend = LdapAuthenticator(settings.ldap)
    elif settings.provider == "static":
        backend = StaticAuthenticator(settings.users, workers=settings.login_workers)
    elif settings.provider == "dummy":
        log.warning("auth provider 'dummy' is on (VMPOOLER_DEBUG): ANY password that differs from the user "
                    "name is accepted and gets a token; never use it outside development")
        backend = DummyAuthenticator()
    else:
        raise ValueError(f"auth.provider: must be ldap, static or dummy, got {settings.provider!r}")
    return LoginGuard(backend, LoginLimits.from_settings(settings))
