"""The ldap provider against a real slapd (see conftest.py for the directory's contents)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from corral.auth import AuthUnavailable, LdapAuthenticator, build_authenticator
from corral.auth.settings import AuthSettings, LdapSettings

from .conftest import PASSWORDS, Slapd

ALICE, BOB, DAVE = PASSWORDS["alice"], PASSWORDS["bob"], PASSWORDS["dave"]


def make(
    slapd: Slapd,
    *,
    base: tuple[str, ...] = ("ou=people",),
    user_object: tuple[str, ...] = ("uid",),
    method: str = "plain",
    port: int | None = None,
    host: str | None = None,
    service: str | None = None,
    tls_options: dict[str, Any] | None = None,
    timeout: float = 2.0,
) -> LdapAuthenticator:
    """An authenticator for ``slapd``; ``base`` entries are relative to the suffix."""
    data: dict[str, Any] = {
        "host": host or slapd.host,
        "port": port or (slapd.tls_port if method == "simple_tls" else slapd.port),
        "base": [f"{b},{slapd.suffix}" if b else slapd.suffix for b in base],
        "user_object": list(user_object),
        "encryption": {"method": method, "tls_options": tls_options if tls_options is not None else {}},
        "timeout": timeout,
    }
    if method != "plain" and tls_options is None:
        data["encryption"]["tls_options"] = {"ca_file": slapd.ca_file}
    if service is not None:
        data["service_account_hash"] = {"user_dn": slapd.service_dn, "password": service}
    return LdapAuthenticator(LdapSettings.model_validate(data))


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.fixture
def no_secrets_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for secret in PASSWORDS.values():
        assert secret not in caplog.text


# -- direct binds (no service account) ------------------------------------------------------


@pytest.mark.usefixtures("no_secrets_logged")
async def test_direct_bind_good_wrong_unknown_empty(slapd: Slapd) -> None:
    auth = make(slapd)
    assert await auth.authenticate("alice", ALICE)
    assert await auth.authenticate("carol", PASSWORDS["carol"])  # {SSHA} userPassword
    assert not await auth.authenticate("alice", "wrong")
    assert not await auth.authenticate("alice", BOB)
    assert not await auth.authenticate("nobody", ALICE)
    assert not await auth.authenticate("alice", "")
    for odd in ("", " alice", "alice ", "alice\n", "al\x00ice"):
        assert not await auth.authenticate(odd, ALICE), repr(odd)


async def test_empty_password_is_refused_before_connecting(slapd: Slapd) -> None:
    # nothing listens on the port: a False (not AuthUnavailable) proves no bind was attempted
    auth = make(slapd, port=dead_port())
    assert not await auth.authenticate("alice", "")
    with pytest.raises(AuthUnavailable):
        await auth.authenticate("alice", ALICE)


async def test_list_of_bases(slapd: Slapd) -> None:
    assert not await make(slapd, base=("ou=people",)).authenticate("bob", BOB)
    both = make(slapd, base=("ou=people", "ou=staff"))
    assert await both.authenticate("alice", ALICE)
    assert await both.authenticate("bob", BOB)  # uid=bob,ou=people refuses it; ou=staff's bob takes it
    assert await both.authenticate("bob", "bob-in-people")
    assert not await both.authenticate("bob", ALICE)


async def test_list_of_user_objects(slapd: Slapd) -> None:
    assert not await make(slapd, user_object=("uid",)).authenticate("dave", DAVE)
    both = make(slapd, user_object=("uid", "cn"))
    assert await both.authenticate("dave", DAVE)  # found as cn=dave
    assert await both.authenticate("alice", ALICE)  # found as uid=alice
    assert not await both.authenticate("dave", ALICE)


async def test_direct_bind_injection(slapd: Slapd) -> None:
    # unescaped, "bob,ou=staff" under the suffix would be bob's own DN
    under_suffix = make(slapd, base=("",))
    assert not await under_suffix.authenticate("bob,ou=staff", BOB)
    assert not await under_suffix.authenticate("bob+cn=bob,ou=staff", BOB)
    assert await make(slapd, base=("ou=staff",)).authenticate("bob", BOB)
    people = make(slapd)
    for user in ("*", "alice)(uid=*", "alice,ou=people", "#alice", "alice\\"):
        assert not await people.authenticate(user, ALICE), user


# -- service account --------------------------------------------------------------------------


@pytest.mark.usefixtures("no_secrets_logged")
async def test_service_account_flow(slapd: Slapd) -> None:
    auth = make(slapd, service=PASSWORDS["service"], base=("ou=people", "ou=staff"), user_object=("uid", "cn"))
    assert await auth.authenticate("alice", ALICE)
    assert await auth.authenticate("bob", BOB)  # people's bob refuses it, then staff's bob (second base)
    assert await auth.authenticate("bob", "bob-in-people")
    assert await auth.authenticate("dave", DAVE)  # second attribute
    assert not await auth.authenticate("alice", "wrong")
    assert not await auth.authenticate("alice", BOB)
    assert not await auth.authenticate("nobody", ALICE)
    assert not await auth.authenticate("alice", "")


async def test_service_account_injection(slapd: Slapd) -> None:
    staff = make(slapd, service=PASSWORDS["service"], base=("ou=staff",))
    assert await staff.authenticate("bob", BOB)
    # unescaped, each of these filters would match bob alone, and bob's password would bind
    for user in ("*", "b*", "*)(uid=*", "bob)(|(uid=*", "bob,ou=staff"):
        assert not await staff.authenticate(user, BOB), user
    people = make(slapd, service=PASSWORDS["service"])
    assert not await people.authenticate("alice)(uid=*", ALICE)


async def test_service_search_finding_several_entries_refuses(slapd: Slapd) -> None:
    # uid=twin names two entries in ou=people: ambiguous, refused even with a right password
    auth = make(slapd, service=PASSWORDS["service"])
    assert not await auth.authenticate("twin", "twin-1")
    assert not await auth.authenticate("twin", "twin-2")
    # without a service account, the DN is built, not searched: uid=twin,ou=people is one entry
    assert await make(slapd).authenticate("twin", "twin-1")


async def test_wrong_service_password_is_unavailable(slapd: Slapd) -> None:
    auth = make(slapd, service="not-the-service-password")
    with pytest.raises(AuthUnavailable) as info:
        await auth.authenticate("alice", ALICE)
    message = str(info.value)
    assert f"127.0.0.1:{slapd.port}" in message and slapd.service_dn in message
    assert "not-the-service-password" not in message and ALICE not in message
    assert info.value.server == f"127.0.0.1:{slapd.port}"


# -- encryption -------------------------------------------------------------------------------


async def test_start_tls(slapd: Slapd) -> None:
    assert await make(slapd, method="start_tls").authenticate("alice", ALICE)
    assert not await make(slapd, method="start_tls").authenticate("alice", "wrong")
    svc = make(slapd, method="start_tls", service=PASSWORDS["service"], base=("ou=staff",))
    assert await svc.authenticate("bob", BOB)


async def test_simple_tls(slapd: Slapd) -> None:
    assert await make(slapd, method="simple_tls").authenticate("alice", ALICE)
    assert not await make(slapd, method="simple_tls").authenticate("alice", "wrong")
    pinned = make(slapd, method="simple_tls", tls_options={"ca_file": slapd.ca_file, "ssl_version": "TLSv1_2"})
    assert await pinned.authenticate("alice", ALICE)


async def test_start_tls_is_the_default(slapd: Slapd) -> None:
    settings = LdapSettings(host=slapd.host, port=slapd.port, base=[slapd.suffix], user_object=["uid"])
    assert settings.encryption.method == "start_tls"
    # default verify_mode is peer with the system CAs, which do not know the test CA
    with pytest.raises(AuthUnavailable, match="StartTLS"):
        await LdapAuthenticator(settings).authenticate("alice", ALICE)


@pytest.mark.parametrize("method", ["simple_tls", "start_tls"])
async def test_certificate_checks(slapd: Slapd, method: str) -> None:
    wrong_ca = make(slapd, method=method, tls_options={"ca_file": slapd.other_ca_file})
    with pytest.raises(AuthUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await wrong_ca.authenticate("alice", ALICE)
    # the certificate names 127.0.0.1 and corral-ldap.test, not localhost
    wrong_name = make(slapd, method=method, host="localhost")
    with pytest.raises(AuthUnavailable, match="localhost"):
        await wrong_name.authenticate("alice", ALICE)
    unchecked = make(slapd, method=method, host="localhost", tls_options={"verify_mode": "none"})
    assert await unchecked.authenticate("alice", ALICE)


async def test_tls_against_a_plain_port_is_unavailable(slapd: Slapd) -> None:
    with pytest.raises(AuthUnavailable, match=f"127.0.0.1:{slapd.port}"):
        await make(slapd, method="simple_tls", port=slapd.port).authenticate("alice", ALICE)


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["plain", "start_tls", "simple_tls"])
async def test_server_down(slapd: Slapd, method: str) -> None:
    port = dead_port()
    auth = make(slapd, method=method, port=port, service=PASSWORDS["service"])
    with pytest.raises(AuthUnavailable) as info:
        await auth.authenticate("alice", ALICE)
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert ALICE not in message and PASSWORDS["service"] not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_server_that_never_answers_times_out(slapd: Slapd) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        auth = make(slapd, port=silent.getsockname()[1], timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(AuthUnavailable, match="127.0.0.1"):
            await auth.authenticate("alice", ALICE)
        assert time.monotonic() - t0 < 3.0  # receive timeout: 0.5 s rounded up to 1 s


async def test_concurrent_authentications(slapd: Slapd) -> None:
    auth = make(slapd, method="start_tls", service=PASSWORDS["service"], base=("ou=people", "ou=staff"))
    users = [("alice", ALICE), ("bob", BOB), ("alice", "wrong"), ("nobody", "x")] * 6
    results = await asyncio.gather(*(auth.authenticate(u, p) for u, p in users))
    assert results == [True, True, False, False] * 6


# -- configuration --------------------------------------------------------------------------------


async def test_build_authenticator(slapd: Slapd) -> None:
    settings = AuthSettings.model_validate(
        {"provider": "ldap", "ldap": {"host": slapd.host, "port": slapd.port, "base": f"ou=people,{slapd.suffix}",
                                     "user_object": "uid", "encryption": {"method": "plain"}}}
    )
    auth = build_authenticator(settings)
    assert isinstance(auth.backend, LdapAuthenticator)
    assert await auth.authenticate("alice", ALICE)
    with pytest.raises(ValueError, match="auth.ldap"):
        build_authenticator(AuthSettings(provider="ldap"))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"tls_options": {"ssl_version": "SSLv2"}}, "ssl_version"),
        ({"tls_options": {"verify_mode": "sometimes"}}, "verify_mode"),
        ({"tls_options": {"ca_file": "/nonexistent/ca.pem"}}, "ca_file"),
        ({"base": ["not a dn"]}, r"base\[0\]"),
        ({"base": [""]}, r"base\[0\]"),
        ({"user_object": ["u id"]}, r"user_object\[0\]"),
    ],
)
def test_bad_settings_fail_at_construction(slapd: Slapd, change: dict[str, Any], error: str) -> None:
    data: dict[str, Any] = {"host": slapd.host, "base": [slapd.suffix], "user_object": ["uid"],
                            "encryption": {"method": "start_tls", "tls_options": {"ca_file": slapd.ca_file}}}
    if "tls_options" in change:
        data["encryption"]["tls_options"] = change["tls_options"]
    else:
        data.update(change)
    with pytest.raises(ValueError, match=error):
        LdapAuthenticator(LdapSettings.model_validate(data))


def test_ruby_style_tls_options_are_accepted(slapd: Slapd) -> None:
    for options in ({"verify_mode": 1, "ca_file": slapd.ca_file}, {"verify_mode": 0},
                    {"ssl_version": "TLSv1_2_client", "ca_file": slapd.ca_file}, {"ssl_version": "SSLv23"}):
        make(slapd, method="start_tls", tls_options=options)
