from __future__ import annotations

import hashlib
import re

from corral.auth.tokens import TOKEN_RE, hash_token, new_token, same_hash, token_hint


def test_new_token_shape_and_uniqueness() -> None:
    tokens = {new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    for token in tokens:
        assert re.fullmatch(r"[a-z][a-z0-9]{31}", token), token
        assert TOKEN_RE.match(token)
    # every allowed character shows up somewhere: the alphabet is the whole of [a-z0-9]
    assert set("".join(tokens)) == set("abcdefghijklmnopqrstuvwxyz0123456789")


def test_hash_token_is_hex_sha256() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token(new_token()))
    assert hash_token("a") != hash_token("b")


def test_token_hint_shows_only_the_ends() -> None:
    assert token_hint("utpg2i2xswor6h8ttjhu3d47z3yuy47y") == "utpg…y47y"
    assert token_hint("short") == "…"
    assert token_hint("") == "…"


def test_token_re_is_vmpoolers() -> None:
    for good in ("a", "A-b_9", "x" * 64):
        assert TOKEN_RE.match(good)
    for bad in ("", "x" * 65, "a b", "a/b", "tok\n", "é", "a.b", "*"):
        assert not TOKEN_RE.match(bad), bad


def test_same_hash() -> None:
    h = hash_token("t")
    assert same_hash(h, hash_token("t"))
    assert not same_hash(h, hash_token("u"))
    assert not same_hash(h, "")
    assert not same_hash(h, "é")  # non-ASCII input does not raise
