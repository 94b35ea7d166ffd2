"""Unknown keys: an error in corral's own sections, a warning in vmpooler's, except a near-miss
of a key corral reads there or a key corral reads in another section; never with a value."""

from __future__ import annotations

import pytest

from corral.config import Config, ConfigError, load_config, parse_config
from corral.config.keys import SECTIONS, Rule, judge_key
from helpers import REFERENCE, problems_of

PLANTED = "Pl4nted-Secret!"
SIM = {":sim": {"provider_class": "sim"}}
POOL = {"name": "p", "template": "t", "size": 1}

VMPOOLER = Rule(":config:")
CORRAL = Rule(":runner:", strict=True)
PLUGIN = Rule("a :dns_configs: entry", open=True)
KNOWN = frozenset({"task_limit", "timeout", "prefix"})


@pytest.mark.parametrize(
    ("key", "rule", "quiet", "elsewhere", "level", "message"),
    [
        # vmpooler's sections: keys of plugins corral does not have are only a warning
        ("colour", VMPOOLER, (), (), "warning", "x.colour: unknown key, ignored"),
        ("vm_checktime", VMPOOLER, ("vm_checktime",), (), "quiet", ""),
        ("task_limt", VMPOOLER, (), (), "error", "x.task_limt: not a known key; did you mean 'task_limit'?"),
        ("TASK_LIMIT", VMPOOLER, (), (), "error", "x.TASK_LIMIT: not a known key; did you mean 'task_limit'?"),
        ("feed_timeout", VMPOOLER, (), (":monitoring:",), "error",
         "x.feed_timeout: not read in :config:; corral reads 'feed_timeout' in :monitoring:"),
        ("port", VMPOOLER, (), (":redis:", "a vSphere provider"), "error",
         "x.port: not read in :config:; corral reads 'port' in :redis: and a vSphere provider"),
        # corral's own sections: anything unknown is a mistake
        ("colour", CORRAL, (), (), "error", "x.colour: not a known key"),
        ("timeot", CORRAL, (), (), "error", "x.timeot: not a known key; did you mean 'timeout'?"),
        ("feed_timeout", CORRAL, (), (":monitoring:",), "error",
         "x.feed_timeout: not read in :runner:; corral reads 'feed_timeout' in :monitoring:"),
        # a plugin's settings: its own keys are expected, a near-miss of corral's is not
        ("api_key", PLUGIN, (), (), "quiet", ""),
        ("password", PLUGIN, (), (), "quiet", ""),  # read elsewhere, but a plugin may have its own
        ("prefx", PLUGIN, (), (), "error", "x.prefx: not a known key; did you mean 'prefix'?"),
        # near-misses: alike by difflib's ratio, or one typo away however short
        ("tiemout", CORRAL, (), (), "error", "x.tiemout: not a known key; did you mean 'timeout'?"),
        ("prefxi", CORRAL, (), (), "error", "x.prefxi: not a known key; did you mean 'prefix'?"),
        ("tsak", Rule(":x:", strict=True), (), (), "error", "x.tsak: not a known key"),
    ],
)
def test_judging_an_unknown_key(key, rule, quiet, elsewhere, level, message):
    verdict = judge_key(f"x.{key}", key, known=KNOWN, quiet=frozenset(quiet), rule=rule, elsewhere=elsewhere)
    assert (verdict.level, verdict.message) == (level, message)


def test_every_section_of_the_file_has_a_rule():
    assert set(Config.model_fields) == set(SECTIONS) | {"providers", "tagfilter"}
    assert {k for k, rule in SECTIONS.items() if rule.strict} == {"store", "monitoring", "scheduling", "runner", "ha",
                                                                        "api"}




@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({":store": {"paht": "x.db"}}, "store.paht: not a known key; did you mean 'path'?"),
        ({":monitoring": {"reconcile_every": 5}}, "monitoring.reconcile_every: not a known key"),
        ({":scheduling": {"polcy": "pack"}}, "scheduling.polcy: not a known key; did you mean 'policy'?"),
        ({":ha": {"lease_tll": 5}}, "ha.lease_tll: not a known key; did you mean 'lease_ttl'?"),
        ({":runner": {"task_limit": 3}},
         "runner.task_limit: not read in :runner:; corral reads 'task_limit' in :config:"),
        ({":providers": {":sim": {"provider_class": "sim", "hostz": 3}}},
         "providers.sim.hostz: not a known key; did you mean 'hosts'?"),
        ({":providers": {":sim": {"provider_class": "sim", "latency": {"boot_s": 1}}}},
         "providers.sim.latency.boot_s: not a known key; did you mean 'boot'?"),
        ({":providers": {":sim": {"provider_class": "sim", "latency": {"spinup": 1}}}},
         "providers.sim.latency.spinup: not a known key"),
        ({":config": {"task_limt": 5}}, "config.task_limt: not a known key; did you mean 'task_limit'?"),
        ({":config": {"feed_timeout": 5}}, "config.feed_timeout: not read in :config:; corral reads 'feed_timeout' "
                                          "in :monitoring:"),
        ({":config": {"ready_check_adress": "guest_ip"}},
         "config.ready_check_adress: not a known key; did you mean 'ready_check_address'?"),
        ({":pools": [{**POOL, "sise": 2}]}, "pools[0].sise: not a known key; did you mean 'size'?"),
        ({":pools": [{**POOL, "policy": "pack"}]},
         "pools[0].policy: not read in a pool; corral reads 'policy' in :scheduling:"),
        ({":pool": [POOL]}, "pool: not a known key; did you mean 'pools'?"),
        ({":auth": {"provider": "ldap", "ldap": {"host": "h", "base": "b", "user_object": "uid", "prot": 636}}},
         "auth.ldap.prot: not a known key; did you mean 'port'?"),
        ({":dns_configs": {":x": {"domian": "example.com"}}},
         "dns_configs.x.domian: not a known key; did you mean 'domain'?"),
        ({":providers": {**SIM, ":dummy": {"provider_class": "dummy", "time_scal": 1}}},
         "providers.dummy.time_scal: not a known key; did you mean 'time_scale'?"),
        ({":providers": {**SIM, ":vsphere": {"server": "vc", "username": "u", "password": "p", "concurency": 4}}},
         "providers.vsphere.concurency: not a known key; did you mean 'concurrency'?"),
        ({":providers": {**SIM, ":vsphere": {"server": "vc", "username": "u", "password": "p", "domain": "x.org"}}},
         "providers.vsphere.domain: not read in a vSphere provider; corral reads 'domain' in :config:, a pool "
         "and a :dns_configs: entry"),
    ],
)
def test_a_mistaken_key_is_an_error_that_says_what_was_meant(doc: dict, problem: str):
    assert problems_of(doc) == [problem]


def test_keys_of_vmpooler_plugins_are_warnings_or_quiet():
    doc = {":providers": {**SIM, ":dummy": {"provider_class": "dummy", "filename": "/tmp/x",
                                            "createvm_max_time": 3, "colour": "red"}},
           ":config": {"colour": 1, "vm_checktime": 1, "purge_interval": 60},
           ":pools": [{**POOL, "provider": "sim", "colour": "red", "timeout_notification": 5}],
           ":redis": {"server": "r", "connection_pool_size": 5},
           ":statsd": {"server": "s"}, ":tracing": {"enabled": False}, ":extras": {"x": 1},
           ":dns_configs": {":cloud": {"dns_class": "gcp", "domain": "example.com", "project": "p"}}}
    _, warnings = parse_config(doc)
    assert sorted(warnings) == ["config.colour: unknown key, ignored", "extras: unknown key, ignored",
                                "pools[0].colour: unknown key, ignored",
                                "providers.dummy.colour: unknown key, ignored"]


def test_a_mistaken_key_never_shows_its_value():
    doc = {":redis": {"pasword": PLANTED}, ":store": {"pasword": PLANTED},
           ":config": {"ready_check_adress": PLANTED, "secret_sauce": PLANTED},
           ":providers": {":sim": {"provider_class": "sim", "pasword": PLANTED},
                          ":vsphere": {"server": "vc", "username": "u", "password": "p", "pasword": PLANTED}},
           ":pools": [{**POOL, "provider": "sim"}]}
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert sorted(err.value.problems) == [
        "config.ready_check_adress: not a known key; did you mean 'ready_check_address'?",
        "providers.sim.pasword: not a known key",
        "providers.vsphere.pasword: not a known key; did you mean 'password'?",
        "redis.pasword: not a known key; did you mean 'password'?",
        "store.pasword: not a known key",
    ]
    assert PLANTED not in str(err.value)


def test_vmpoolers_own_example_file_loads_without_a_warning():
    _, warnings = load_config(REFERENCE)
    assert warnings == []
