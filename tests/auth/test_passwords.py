from __future__ import annotations

import base64
import hashlib

import pytest

from corral.auth.passwords import (
    DEFAULT_ITERATIONS,
    check_password_hash,
    hash_password,
    parse_password_hash,
    verify_password,
)

FAST = 1000


def test_format_and_round_trip() -> None:
    encoded = hash_password("correct horse", iterations=FAST)
    algorithm, iterations, salt, digest = encoded.split("$")
    assert (algorithm, iterations) == ("pbkdf2_sha256", str(FAST))
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horse ", encoded)
    assert not verify_password("", encoded)
    check_password_hash(encoded)


def test_default_iterations_and_fresh_salts() -> None:
    a, b = hash_password("pw"), hash_password("pw", iterations=FAST)
    assert a.split("$")[1] == str(DEFAULT_ITERATIONS) >= "600000"
    assert hash_password("pw", iterations=FAST) != b  # new salt every time
    assert verify_password("pw", a)


def test_matches_an_independent_computation() -> None:
    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", "pässwörd".encode(), salt, 5000, 32)
    encoded = f"pbkdf2_sha256$5000${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert verify_password("pässwörd", encoded)
    # padding is optional when read
    assert verify_password("pässwörd", encoded.rstrip("="))
    assert not verify_password("passwörd", encoded)


def test_odd_passwords_do_not_raise() -> None:
    encoded = hash_password("\udcff\x00x", iterations=FAST)  # lone surrogate and NUL
    assert verify_password("\udcff\x00x", encoded)
    assert not verify_password(None, encoded)  # type: ignore[arg-type]
    assert not verify_password(b"x", encoded)  # type: ignore[arg-type]


GOOD = "pbkdf2_sha256$1000$MDEyMzQ1Njc4OWFiY2RlZg==$" + base64.b64encode(b"x" * 32).decode()
MALFORMED = {
    "hunter2": "expected 4 fields",
    "": "expected 4 fields",
    "pbkdf2_sha256$1000$abc": "expected 4 fields",
    "md5$1000$MDEy$" + GOOD.rsplit("$", 1)[1]: "unsupported hash algorithm",
    GOOD.replace("$1000$", "$-5$"): "not a whole number",
    GOOD.replace("$1000$", "$1e3$"): "not a whole number",
    GOOD.replace("$1000$", "$0$"): "between 1 and",
    GOOD.replace("$1000$", "$999999999999$"): "between 1 and",
    GOOD.replace("MDEyMzQ1Njc4OWFiY2RlZg==", "not base64!"): "salt is not valid base64",
    GOOD.replace("MDEyMzQ1Njc4OWFiY2RlZg==", ""): "salt is empty",
    GOOD.rsplit("$", 1)[0] + "$" + base64.b64encode(b"short").decode(): "must be 32 bytes",
}


@pytest.mark.parametrize("encoded", MALFORMED)
def test_malformed_hashes(encoded: str) -> None:
    assert not verify_password("hunter2", encoded)
    with pytest.raises(ValueError, match=MALFORMED[encoded]) as info:
        check_password_hash(encoded)
    if encoded:
        assert encoded not in str(info.value)  # a stored secret (or a password in clear) is never echoed
    assert "hunter2" not in str(info.value)


def test_non_string_hash() -> None:
    assert not verify_password("x", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a string"):
        check_password_hash(123)  # type: ignore[arg-type]


def test_hash_password_rejects_bad_iterations() -> None:
    with pytest.raises(ValueError, match="iterations"):
        hash_password("x", iterations=0)


def test_parse() -> None:
    parsed = parse_password_hash(GOOD)
    assert parsed.iterations == 1000 and parsed.salt == b"0123456789abcdef" and parsed.digest == b"x" * 32
