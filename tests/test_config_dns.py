"""vmpooler 3's ``:dns_configs:`` give pools their domain (``domain_pools`` and the vSphere
pools alike, by one rule); a DNS plugin's own keys are accepted and never shown."""

from __future__ import annotations

import pytest

from corral.config import load_config, parse_config, safe_view
from corral.domain.names import pool_domain
from corral.runtime import build_providers
from helpers import REFERENCE, REPO, SIM_ONLY, problems_of

DNS_FILE = REPO / "tests" / "fixtures" / "vmpooler-dns.yaml"
PLANTED = "planted-dns-api-key"  # the `cloud` entry's api_key in DNS_FILE
FIXTURE_DOMAINS = {"debian-12-x86_64": "example.com", "centos-9-x86_64": "cloud.example.net",
                   "own-domain": "own.example.org", "no-plugin": None}




@pytest.mark.parametrize(
    ("own", "plugin", "dns", "global_domain", "expected"),
    [
        (None, None, {}, None, None),  # nothing anywhere
        (None, None, {}, "g.example", "g.example"),  # vmpooler 2's :config: domain
        (None, "a", {"a": "a.example"}, None, "a.example"),  # the plugin the pool names
        (None, "a", {"a": "a.example"}, "g.example", "a.example"),  # a plugin wins over :config:
        (None, "b", {"a": "a.example", "b": "b.example"}, None, "b.example"),
        (None, None, {"a": "a.example"}, None, "a.example"),  # no plugin named: the only one is the default
        (None, None, {"a": "a.example"}, "g.example", "a.example"),
        (None, None, {"a": "a.example", "b": "b.example"}, None, None),  # several: no default
        (None, None, {"a": "a.example", "b": "b.example"}, "g.example", "g.example"),
        (None, "a", {"a": None}, "g.example", "g.example"),  # a plugin without a domain falls through
        (None, None, {"a": None}, None, None),
        ("own.example", "a", {"a": "a.example"}, "g.example", "own.example"),  # the pool's own key wins
        ("own.example", None, {}, "g.example", "own.example"),
    ],
)
def test_which_domain_a_pool_gets(own, plugin, dns, global_domain, expected):
    assert pool_domain(own, plugin, dns, global_domain) == expected


def test_pools_take_the_domain_of_their_dns_plugin():
    config, warnings = load_config(DNS_FILE)
    assert {p.name: p.domain for p in config.domain_pools()} == FIXTURE_DOMAINS
    assert warnings == ["pools[3].dns_plugin: not given, and :dns_configs: has 2 entries (example, cloud), "
                        "none of them the default; the pool's VMs get no domain"]


def test_the_vsphere_pools_get_the_same_domains():
    config, _ = load_config(DNS_FILE)
    vsphere = build_providers(config)["vsphere"]
    assert {name: p.domain for name, p in vsphere.pools.items()} == FIXTURE_DOMAINS  # type: ignore[attr-defined]


def test_vmpoolers_own_example_pools_get_its_only_dns_config():
    config, warnings = load_config(REFERENCE)
    assert {p.domain for p in config.domain_pools()} == {"example.com"}
    vsphere = build_providers(config)["vsphere"]
    assert {p.domain for p in vsphere.pools.values()} == {"example.com"}  # type: ignore[attr-defined]
    assert not [w for w in warnings if "dns" in w], warnings


def test_a_dns_plugin_that_does_not_exist_is_an_error_naming_it():
    pools = [{"name": "p", "template": "t", "size": 1, "dns_plugin": "exmaple"},
             {"name": "q", "template": "t", "size": 1, "dns_plugin": "example"}]
    assert problems_of({":dns_configs": {":example": {"domain": "example.com"}}, ":pools": pools}) == [
        "pools[0].dns_plugin: no dns config named 'exmaple' (dns_configs: example)"]
    assert problems_of({":pools": pools[1:]}) == [
        "pools[0].dns_plugin: no dns config named 'example' (dns_configs: none configured)"]


def test_a_plugins_own_keys_are_accepted_and_never_shown():
    config, warnings = load_config(DNS_FILE)
    view = safe_view(config)
    assert view["dns_configs"] == {"example": {"dns_class": "dynamic-dns", "domain": "example.com"},
                                   "cloud": {"dns_class": "gcp", "domain": "cloud.example.net"}}
    assert PLANTED not in repr(view) and not [w for w in warnings if PLANTED in w or "api_key" in w]


def test_dns_config_errors_never_echo_a_plugins_secret():
    doc = {":dns_configs": {":cloud": {"dns_class": "gcp", "domain": ["x", PLANTED], "api_key": PLANTED},
                            ":odd": PLANTED}}
    got = problems_of(doc)
    assert sorted(got) == ["dns_configs.cloud.domain: must be a string, got <redacted>",
                           "dns_configs.odd: must be a mapping, got <redacted>"]


@pytest.mark.parametrize("bad", ["example .com", ".example.com", "example..com", "-a.example", "a" * 64 + ".com"])
def test_a_domain_that_is_no_domain_name_is_an_error(bad: str):
    rule = "must be a domain name: labels of letters, digits, '-' or '_' joined by dots (like example.com)"
    shown = repr(bad) if len(repr(bad)) <= 60 else repr(bad)[:57] + "..."
    doc = {":dns_configs": {":x": {"domain": bad}}, ":config": {"domain": bad},
           ":pools": [{"name": "p", "template": "t", "size": 1, "domain": bad}]}
    assert sorted(problems_of(doc)) == sorted([f"dns_configs.x.domain: {rule}, got {shown}",
                                               f"config.domain: {rule}, got {shown}",
                                               f"pools[0].domain: {rule}, got {shown}"])


def test_an_empty_dns_configs_section_or_entry_loads():
    config, warnings = parse_config({**SIM_ONLY, ":dns_configs": None})
    assert config.dns_configs == {} and warnings == []
    pools = [{"name": "p", "template": "t", "size": 1, "dns_plugin": "x"}]
    config, warnings = parse_config({**SIM_ONLY, ":dns_configs": {":x": None}, ":pools": pools})
    assert config.domain_pools()[0].domain is None and warnings == []


@pytest.mark.parametrize(("dns_configs", "global_domain", "expected"), [
    ({}, None, None),
    ({}, "global.example", "global.example"),
    ({"only": {"dns_class": "dynamic-dns", "domain": "only.example"}}, "global.example", "only.example"),
    ({"a": {"domain": "a.example"}, "b": {"domain": "b.example"}}, "global.example", "global.example"),
])
def test_the_default_domain_is_what_a_pool_without_domain_or_plugin_gets(dns_configs, global_domain, expected):
    """The API's answer for a VM whose pool is gone falls back to this, as pools do."""
    config, _ = parse_config({":config": {"domain": global_domain} if global_domain else {},
                              ":dns_configs": dns_configs,
                              ":providers": {"sim": {"provider_class": "sim"}},
                              ":pools": [{"name": "p", "template": "t", "size": 0}]})
    assert config.default_domain == expected
    assert config.domain_pools()[0].domain == expected
