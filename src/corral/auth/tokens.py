"""API tokens: how they are made, stored (as a SHA-256 hash, never in clear) and shown.

A token is handed to its owner once; corral keeps only :func:`hash_token` of it and a
:func:`token_hint` for listings, and compares hashes with :func:`same_hash`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

__all__ = ["TOKEN_LENGTH", "TOKEN_RE", "hash_token", "new_token", "same_hash", "token_hint"]

TOKEN_LENGTH = 32
_FIRST = string.ascii_lowercase
_REST = string.ascii_lowercase + string.digits

# What a well-formed token looks like in a request (vmpooler's ``^[a-zA-Z0-9_-]{1,64}$``);
# anything else is rejected before it is hashed or looked up. Tokens corral makes match it.
# ``\Z``, not ``$``: ``$`` would let "token\n" through (Ruby's ``$`` is laxer still).
TOKEN_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}\Z")


def new_token() -> str:
    """A fresh token: 32 characters of ``[a-z0-9]``, the first a letter (~164 bits)."""
    return secrets.choice(_FIRST) + "".join(secrets.choice(_REST) for _ in range(TOKEN_LENGTH - 1))


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token``: what the store keeps and looks tokens up by."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_hint(token: str) -> str:
    """A recognisable, non-secret excerpt, e.g. ``"utpg…y47y"`` (first and last 4 characters).

    Tokens shorter than 16 characters would give too much of themselves away: only ``"…"``.
    """
    if len(token) < 16:
        return "…"
    return f"{token[:4]}…{token[-4:]}"


def same_hash(a: str, b: str) -> bool:
    """Constant-time equality of two hashes (or any two strings)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
