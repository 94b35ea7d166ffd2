"""Hostnames for new VMs, in vmpooler's style: 15 random lowercase letters and digits."""

from __future__ import annotations

import secrets
import string

_FIRST = string.ascii_lowercase
_REST = string.ascii_lowercase + string.digits


def new_hostname(prefix: str = "", length: int = 15) -> str:
    """A fresh random hostname; it starts with a letter so it is a valid DNS label."""
    body = secrets.choice(_FIRST) + "".join(secrets.choice(_REST) for _ in range(length - 1))
    return f"{prefix}{body}"
