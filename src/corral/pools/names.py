"""Hostnames for new VMs, in vmpooler's style: 15 random lowercase letters and digits."""

from __future__ import annotations

import secrets
import string

_FIRST = string.ascii_lowercase
_REST = string.ascii_lowercase + string.digits
_UNBIASED = 252  # the largest multiple of 36 below 256: bytes at or above it are skipped


def _random_chars(alphabet: str, count: int) -> str:
    """``count`` characters of ``alphabet`` (26 or 36 long), uniformly, from one or two reads of
    the system's random source (one ``secrets.choice`` each would make ``count`` reads)."""
    out: list[str] = []
    limit = _UNBIASED - _UNBIASED % len(alphabet)
    while len(out) < count:
        out += [alphabet[b % len(alphabet)] for b in secrets.token_bytes(2 * count) if b < limit]
    return "".join(out[:count])


def new_hostname(prefix: str = "", length: int = 15) -> str:
    """A fresh random hostname, all lowercase (the API matches names in any case); it starts
    with a letter so it is a valid DNS label."""
    return f"{prefix.lower()}{_random_chars(_FIRST, 1)}{_random_chars(_REST, length - 1)}"
