"""What the configuration may show: errors and warnings never echo a secret or the value of
an unknown key; the dummy auth provider needs a true VMPOOLER_DEBUG and says it is on."""

from __future__ import annotations

import logging

import pytest

from corral.auth import build_authenticator
from corral.config import ConfigError, parse_config
from corral.config.safe import debug_enabled, strip_userinfo

PLANTED = "S3cretPassw0rd!"
POOLS = [{"name": "p", "template": "t", "size": 1}]


def problems(doc: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    return err.value.problems


def vsphere(**keys: object) -> dict:
    return {":providers": {":vsphere": {"server": "vc", "username": "u", "password": "p", **keys}}, ":pools": POOLS}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"pasword": PLANTED}, "providers.vsphere.pasword: not a known key; did you mean 'password'?"),
        ({"vcenter_pwd": PLANTED}, "providers.vsphere.vcenter_pwd: not a known key"),
        ({"credentials": {"user": "x", "password": PLANTED}}, "providers.vsphere.credentials: not a known key"),
        ({"password": [PLANTED]}, "providers.vsphere.password: must be a string, got <redacted>"),
        ({"username": [PLANTED]}, "providers.vsphere.username: must be a string, got <redacted>"),
        ({"concurrency": PLANTED}, f"providers.vsphere.concurrency: must be a whole number, got {PLANTED!r}"),
        ({"resources_allowlist": {"x": PLANTED}}, "providers.vsphere.resources_allowlist: must be a list, "
                                                  "got <redacted>"),
        ({"port": "https://admin:" + PLANTED + "@vc"}, "providers.vsphere.port: must be a whole number, "
                                                      "got 'https://vc'"),
    ],
)
def test_vsphere_errors_never_echo_unknown_or_secret_values(keys: dict, expected: str):
    got = problems(vsphere(**keys))
    assert got == [expected]


@pytest.mark.parametrize(
    ("sim", "expected"),
    [
        ({"latency": [{"pasword": PLANTED}]}, "providers.sim.latency: must be a mapping, got <redacted>"),
        ({"hosts": {"pasword": PLANTED}}, "providers.sim.hosts: must be a whole number, got <redacted>"),
        ({"hosts": [{"name": "h", "cores": PLANTED}]},
         f"providers.sim.hosts[0].cores: must be a whole number, got {PLANTED!r}"),
        ({"templates": {"t": {"cpus": [PLANTED]}}}, "providers.sim.templates.t.cpus: must be a whole number, "
                                                    "got <redacted>"),
    ],
)
def test_sim_errors_never_echo_values_of_unknown_shape(sim: dict, expected: str):
    got = problems({":providers": {":sim": {"provider_class": "sim", **sim}}, ":pools": POOLS})
    assert expected in got, got
    assert all(PLANTED not in p or PLANTED in expected for p in got)


def test_config_errors_hide_secret_fields_and_unknown_shapes():
    got = problems({":providers": {":sim": {"provider_class": "sim"}}, ":pools": POOLS,
                    ":redis": {"password": [PLANTED], "port": "redis://u:" + PLANTED + "@h"},
                    ":auth": {"provider": "ldap", "ldap": {"host": "h", "base": "b", "user_object": "uid",
                                                           "service_account_hash": PLANTED}},
                    ":config": {"allowed_tags": [{"pw": PLANTED}], "task_limit": "many"}})
    assert sorted(got) == sorted([
        "auth.ldap.service_account_hash: must be a mapping, got <redacted>",
        "config.allowed_tags[0]: must be a string, got <redacted>",
        "config.task_limit: must be a whole number, got 'many'",
        "redis.password: must be a string, got <redacted>",
        "redis.port: must be a whole number, got 'redis://h'",
    ])


def test_warnings_name_unknown_keys_without_their_values():
    _, warnings = parse_config({":providers": {":sim": {"provider_class": "dummy", "pasword": PLANTED,
                                                        "latency": {"tokn": PLANTED}}},
                                ":config": {"vcenter_pwd": PLANTED},
                                ":pools": [{**POOLS[0], "ssh_passphrase": PLANTED}]})
    assert sorted(warnings) == ["config.vcenter_pwd: unknown key, ignored",
                                "pools[0].ssh_passphrase: unknown key, ignored",
                                "providers.sim.latency.tokn: unknown key, ignored",
                                "providers.sim.pasword: unknown key, ignored"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://user:pw@host:6379/0", "redis://host:6379/0"),
        ("https://token@example.com/x?a=b", "https://example.com/x?a=b"),
        ("udp://a:b@c@statsd:8125", "udp://statsd:8125"),
        ("HTTP://u:p@H", "HTTP://H"),
        ("https://example.com/path@x", "https://example.com/path@x"),
        ("plain text with user:pw@host", "plain text with user:pw@host"),
        ("debian-12", "debian-12"),
        ("mailto:someone@example.com", "mailto:someone@example.com"),
    ],
)
def test_strip_userinfo(text: str, expected: str):
    assert strip_userinfo(text) == expected


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, False), ("", False), ("0", False), ("false", False), ("False", False), ("no", False),
     ("off", False), ("nope", False), ("2", False), ("1", True), ("true", True), ("TRUE", True),
     ("yes", True), ("On", True), (" yes ", True)],
)
def test_debug_enabled_only_for_a_true_value(value: str | None, enabled: bool):
    assert debug_enabled(value) is enabled


@pytest.mark.parametrize(("value", "ok"), [("false", False), ("0", False), ("", False), ("yes", True), ("1", True)])
def test_dummy_auth_needs_a_true_vmpooler_debug(monkeypatch, value: str, ok: bool):
    monkeypatch.setenv("VMPOOLER_DEBUG", value)
    if ok:
        assert parse_config({":auth": {"provider": "dummy"}})[0].auth.provider == "dummy"
    else:
        assert any("VMPOOLER_DEBUG" in p for p in problems({":auth": {"provider": "dummy"}}))


def test_building_the_dummy_provider_warns_loudly(monkeypatch, caplog):
    monkeypatch.setenv("VMPOOLER_DEBUG", "1")
    config, _ = parse_config({":auth": {"provider": "dummy"}})
    with caplog.at_level(logging.WARNING, logger="corral.auth"):
        build_authenticator(config.auth)
    (record,) = [r for r in caplog.records if r.name == "corral.auth"]
    assert record.levelno == logging.WARNING and "any password" in record.getMessage().lower()


def test_cross_checks_do_not_echo_values_of_the_wrong_shape():
    got = problems({":providers": {":sim": {"provider_class": "sim"}, ":odd": {"provider_class": {"pw": PLANTED}}},
                    ":pools": [{"name": "p", "template": "t", "size": 1, "provider": {"pw": PLANTED}},
                               {"name": "q", "template": "t", "size": 1, "provider": "sim",
                                "alias": [{"pw": PLANTED}]}]})
    assert got and not [p for p in got if PLANTED in p], got
    assert "pools[0].provider: must be a string, got <redacted>" in got
    assert "pools[1].alias[0]: must be a string, got <redacted>" in got
    assert "providers.odd.provider_class: must be a string, got <redacted>" in got


def test_a_lone_value_where_a_section_belongs_is_not_echoed():
    got = problems({":providers": {":sim": PLANTED}, ":config": 5, ":pools": POOLS})
    assert sorted(got) == ["config: must be a mapping, got <redacted>",
                           "providers.sim: must be a mapping, got <redacted>"]
