"""Password hashes for the static provider: PBKDF2-HMAC-SHA256 in one self-describing string.

Format: ``pbkdf2_sha256$<iterations>$<salt-b64>$<hash-b64>``, salt and hash in standard
base64 (RFC 4648, ``+/``, ``=`` padding optional when read). The hash is 32 bytes.

Make one with ``python -m corral.auth.passwords`` (asks for the password, prints the hash).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import NamedTuple

__all__ = ["ALGORITHM", "DEFAULT_ITERATIONS", "check_password_hash", "hash_password", "verify_password"]

ALGORITHM = "pbkdf2_sha256"
# OWASP's 2023 figure for PBKDF2-HMAC-SHA256; about 0.15 s on one core of a small VM.
DEFAULT_ITERATIONS = 600_000
MAX_ITERATIONS = 100_000_000  # a typo guard: more would take minutes per login
SALT_BYTES = 16
HASH_BYTES = 32
HOW_TO_MAKE = "make one with `python -m corral.auth.passwords`"


class ParsedHash(NamedTuple):
    iterations: int
    salt: bytes
    digest: bytes


def _encode(password: str) -> bytes:
    # surrogatepass: any Python str hashes, and hashes the same way every time.
    return password.encode("utf-8", "surrogatepass")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {what} is not valid base64") from None


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS) -> str:
    """Hash ``password`` with a fresh random salt; the result goes into ``auth: users:``."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}, got {iterations}")
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", _encode(password), salt, iterations, HASH_BYTES)
    return f"{ALGORITHM}${iterations}${_b64(salt)}${_b64(digest)}"


def parse_password_hash(encoded: str) -> ParsedHash:
    """Split a stored hash into its parts; ValueError (never echoing the hash) if malformed."""
    if not isinstance(encoded, str):
        raise ValueError(f"expected a string, got {type(encoded).__name__}")
    parts = encoded.split("$")
    if len(parts) != 4:
        raise ValueError(
            f"not a password hash: expected 4 fields '{ALGORITHM}$<iterations>$<salt>$<hash>', "
            f"got {len(parts)} field(s) ({HOW_TO_MAKE}; a password in clear is not accepted)"
        )
    algorithm, iterations_text, salt_text, digest_text = parts
    if algorithm != ALGORITHM:
        raise ValueError(f"unsupported hash algorithm {algorithm[:32]!r}: only {ALGORITHM!r} ({HOW_TO_MAKE})")
    if not iterations_text.isascii() or not iterations_text.isdigit():
        raise ValueError("the iteration count is not a whole number")
    iterations = int(iterations_text)
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"the iteration count must be between 1 and {MAX_ITERATIONS}, got {iterations}")
    salt = _unb64(salt_text, "salt")
    if not salt:
        raise ValueError("the salt is empty")
    digest = _unb64(digest_text, "hash")
    if len(digest) != HASH_BYTES:
        raise ValueError(f"the hash must be {HASH_BYTES} bytes, got {len(digest)}")
    return ParsedHash(iterations, salt, digest)


def check_password_hash(encoded: str) -> None:
    """Raise ValueError with a clear message if ``encoded`` is not a usable hash (config load)."""
    parse_password_hash(encoded)


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; constant-time; False (never raises) if malformed."""
    if not isinstance(password, str):
        return False
    try:
        parsed = parse_password_hash(encoded)
    except ValueError:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", _encode(password), parsed.salt, parsed.iterations, HASH_BYTES)
    return hmac.compare_digest(candidate, parsed.digest)


def _main() -> None:  # pragma: no cover - interactive
    import getpass
    import sys

    first = getpass.getpass("password: ")
    if not first:
        sys.exit("an empty password is never accepted")
    if getpass.getpass("again: ") != first:
        sys.exit("the passwords differ")
    print(hash_password(first))


if __name__ == "__main__":  # pragma: no cover
    _main()
