"""Configuration: vmpooler files load unchanged, defaults match vmpooler's, errors name the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from corral.config import ConfigError, load_config, parse_config
from helpers import REFERENCE, REPO, SIM_ONLY, problems_of

# vmpooler's own example file, copied into the repository


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral.cli", *args], capture_output=True, text=True, timeout=60)


def test_examples_load():
    for name in ("quickstart.yaml", "vmpooler.yaml", "libvirt-kvm.yaml"):
        config, warnings = load_config(REPO / "examples" / name)
        assert config.pools and warnings == [], (name, warnings)


def test_the_libvirt_example_names_two_hosts_and_two_pools():
    config, _ = load_config(REPO / "examples" / "libvirt-kvm.yaml")
    assert config.provider_class("kvm") == "libvirt"
    settings = config.provider_settings("kvm")
    assert [h.host_name for h in settings.hosts] == ["kvm1.example.net", "kvm2"]  # type: ignore[attr-defined]
    assert {p.name: (p.template, p.datastore) for p in config.pools} == {
        "debian-12-x86_64": ("debian-12", "pooled"), "centos-9-x86_64": ("centos-9", "pooled")}


def test_config_check_reads_a_libvirt_configuration_without_libvirt_python():
    blocked = ("import sys; sys.modules['libvirt'] = sys.modules['libvirtaio'] = None; "
               "sys.argv = ['corral', 'config', 'check', sys.argv[1]]; "
               "from corral.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", blocked, str(REPO / "examples" / "libvirt-kvm.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(": ok: 2 pools, 6 VMs, 1 provider, store sqlite\n"), out.stdout


def test_vmpooler_style_file_with_symbol_keys():
    config, _ = load_config(REPO / "examples" / "vmpooler.yaml")
    assert config.config.task_limit == 10 and config.config.prefix == "poolvm-"
    pools = {p.name: p for p in config.domain_pools()}
    debian = pools["debian-12-x86_64"]
    assert debian.alias == ("debian-12-64", "debian-12-amd64")
    assert debian.timeout_s == 15 * 60 and debian.ready_ttl_s == 1440 * 60
    assert debian.lifetime_s == 12 * 3600, "vm_lifetime is in hours"
    assert pools["centos-9-x86_64"].alias == ("centos-9-64",), "a single alias may be a string"
    assert pools["centos-9-x86_64"].ready_ttl_s == 240 * 60, "the global ready_ttl applies"
    assert config.provider_class("dummy") == "sim"
    assert config.providers["vsphere"].model_extra["server"] == "vcenter.example.com"


def test_vmpoolers_own_example_file_loads():
    config, warnings = load_config(REFERENCE)
    assert [p.name for p in config.pools] == ["debian-7-i386", "debian-7-x86_64"]
    assert {p.provider for p in config.domain_pools()} == {"vsphere"}
    assert not [w for w in warnings if "pools" in w or w.startswith("config.")], warnings


def test_vmpooler_defaults():
    config, _ = parse_config({":providers": {":sim": {"provider_class": "sim"}},
                              ":pools": [{"name": "p", "template": "t", "size": 1}]})
    (pool,) = config.domain_pools()
    assert pool.timeout_s == 15 * 60 and pool.ready_ttl_s == 60 * 60 and pool.lifetime_s == 24 * 3600
    assert config.config.task_limit == 10
    assert pool.provider == "sim", "the only provider is the default"
    assert config.store.type == "sqlite"


def test_legacy_top_level_vsphere_section_becomes_a_provider():
    config, _ = parse_config({":vsphere": {"server": "vc", "username": "u", "password": "p"},
                              ":pools": [{"name": "p", "template": "t", "size": 1}]})
    assert "vsphere" in config.providers and config.domain_pools()[0].provider == "vsphere"


def test_all_problems_are_reported_at_once_with_paths_and_values():
    doc = {
        ":providers": {":sim": {"provider_class": "sim", "time_scale": -1, "latency": {"boot": "slow"}}},
        ":config": {"task_limit": 0},
        ":pools": [
            {"name": "a", "template": "t", "size": 1},
            {"name": "b", "template": "t", "size": 1, "alias": ["a"]},
            {"name": "c", "template": "t", "size": -1},
            {"name": "d", "size": 1, "provider": "nowhere"},
        ],
    }
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    problems = err.value.problems
    assert "config.task_limit: must be >= 1, got 0" in problems
    assert "pools[2].size: must be >= 0, got -1" in problems
    assert "pools[3].template: required key is missing" in problems
    assert "pools[1].alias: 'a' is already used by pool 'a'" in problems
    assert any(p.startswith("pools[3].provider: no provider named 'nowhere'") for p in problems)
    assert any(p.startswith("providers.sim.time_scale: must be > 0") for p in problems)
    assert "providers.sim.latency.boot: must be a number, got 'slow'" in problems
    assert len(problems) == 7, problems


def test_secrets_are_never_echoed():
    doc = {":redis": {"password": {"not": "a string"}}, ":providers": {":sim": {"provider_class": "sim"}}}
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    text = str(err.value)
    assert "redis.password" in text and "not" not in text.replace("redis.password", "")


def test_unknown_keys_of_vmpooler_sections_are_warned_about_not_fatal():
    config, warnings = parse_config({
        ":providers": {":sim": {"provider_class": "dummy", "colour": 3}},
        ":config": {"colour": 5, "vm_checktime": 1},
        ":pools": [{"name": "p", "template": "t", "size": 1, "colour": "red", "datastore": "ds"}],
    })
    assert sorted(warnings) == sorted([
        "config.colour: unknown key, ignored",
        "pools[0].colour: unknown key, ignored",
        "providers.sim.colour: unknown key, ignored",
    ])
    assert config.pools[0].name == "p"


def test_unknown_provider_class_is_an_error():
    with pytest.raises(ConfigError) as err:
        parse_config({":providers": {":x": {"provider_class": "ec2"}}})
    assert err.value.problems == ["providers.x.provider_class: must be one of sim, dummy, vsphere, libvirt, got 'ec2'"]


def test_config_check_cli_exit_codes(tmp_path: Path):
    ok = run_cli("config", "check", str(REPO / "examples" / "quickstart.yaml"))
    assert ok.returncode == 0 and "ok: 3 pools" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({":pools": [{"name": "p", "template": "t", "size": -1}]}))
    out = run_cli("config", "check", str(bad))
    assert out.returncode == 2
    assert "pools[0].size: must be >= 0, got -1" in out.stderr
    assert "Traceback" not in out.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text(":pools:\n  - name: [unclosed\n")
    out = run_cli("config", "check", str(broken))
    assert out.returncode == 2 and "not valid YAML (line" in out.stderr and "Traceback" not in out.stderr

    missing = run_cli("config", "check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_static_auth_users_need_real_password_hashes():
    from corral.auth.passwords import hash_password

    good = {":auth": {"provider": "static", "users": {"alice": hash_password("pw", iterations=1000)}}}
    config, _ = parse_config(good)
    assert config.auth is not None and config.auth.provider == "static"
    with pytest.raises(ConfigError) as err:
        parse_config({":auth": {"provider": "static", "users": {"bob": "hunter2"}}})
    assert err.value.problems == ["auth.users.bob: not a password hash made by 'corral auth hash-password', "
                                  "got <redacted>"]
    assert "hunter2" not in str(err.value)


def test_dummy_auth_needs_vmpooler_debug(monkeypatch):
    monkeypatch.delenv("VMPOOLER_DEBUG", raising=False)
    with pytest.raises(ConfigError) as err:
        parse_config({":auth": {"provider": "dummy"}})
    assert "VMPOOLER_DEBUG" in err.value.problems[0]
    monkeypatch.setenv("VMPOOLER_DEBUG", "true")
    assert parse_config({":auth": {"provider": "dummy"}})[0].auth.provider == "dummy"


def test_bad_tagfilter_and_rate_limits_are_reported():
    with pytest.raises(ConfigError) as err:
        parse_config({":tagfilter": {"url": "(unclosed"}, ":rate_limits": {"vm_creation": {"limit": 0, "period": 60}}})
    problems = err.value.problems
    assert any(p.startswith("tagfilter: url: not a valid regular expression") for p in problems), problems
    assert "rate_limits.vm_creation.limit: must be >= 1, got 0" in problems


# -- placement: :config: keys, pool anti_affinity, :scheduling: --------------------------------



def test_placement_defaults():
    config, warnings = parse_config(SIM_ONLY)
    g, s = config.config, config.scheduling
    assert (g.migration_limit, g.utilization_limit, g.clone_target) == (0, 90, None)
    assert (s.policy, s.weights, s.memory_overcommit) == ("even", {}, 1.0)
    assert (s.vcpu_load, s.reservation_timeout) == (0.25, 600)
    assert (s.rebalance, s.rebalance_threshold, s.rebalance_sustain, s.rebalance_interval) == (False, 80, 120, 60)
    assert warnings == []


def test_vmpooler_placement_keys_are_read_not_ignored():
    config, warnings = parse_config({**SIM_ONLY, ":config": {"migration_limit": 5, "utilization_limit": 75,
                                                             "clone_target": "cluster1"}})
    assert (config.config.migration_limit, config.config.utilization_limit) == (5, 75)
    assert config.config.clone_target == "cluster1" and warnings == []
    assert load_config(REPO / "examples" / "vmpooler.yaml")[0].config.migration_limit == 5


def test_scheduling_section_is_read_with_symbol_keys():
    config, warnings = parse_config({**SIM_ONLY, ":scheduling": {":policy": ":pack", "weights": {"cpu": 1, "pack": 3},
                                                                 "memory_overcommit": 1.5, "vcpu_load": 0.5,
                                                                 "rebalance": True, "rebalance_sustain": 0}})
    s = config.scheduling
    assert (s.policy, s.weights, s.memory_overcommit, s.vcpu_load) == ("pack", {"cpu": 1, "pack": 3}, 1.5, 0.5)
    assert s.rebalance and s.rebalance_sustain == 0 and warnings == []


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({":config": {"migration_limit": -1}}, "config.migration_limit: must be >= 0, got -1"),
        ({":config": {"utilization_limit": 0}}, "config.utilization_limit: must be > 0.0, got 0"),
        ({":config": {"utilization_limit": 101}}, "config.utilization_limit: must be <= 100.0, got 101"),
        ({":scheduling": {"policy": "spread"}}, "scheduling.policy: must be 'even', 'pack' or 'count', got 'spread'"),
        ({":scheduling": {"weights": {"cpu": 1, "disk": 2}}},
         "scheduling.weights: unknown factor 'disk' (factors: cpu, memory, count, pack), got {'cpu': 1, 'disk': 2}"),
        ({":scheduling": {"weights": {"disk": 2, "net": 1}}},
         "scheduling.weights: unknown factors 'disk', 'net' (factors: cpu, memory, count, pack), "
         "got {'disk': 2, 'net': 1}"),
        ({":scheduling": {"weights": {"memory": -1}}},
         "scheduling.weights: factors must be >= 0 (see 'memory'), got {'memory': -1}"),
        ({":scheduling": {"weights": {"cpu": "high"}}}, "scheduling.weights.cpu: must be a number, got 'high'"),
        ({":scheduling": {"memory_overcommit": 0}}, "scheduling.memory_overcommit: must be > 0.0, got 0"),
        ({":scheduling": {"vcpu_load": 0}}, "scheduling.vcpu_load: must be > 0.0, got 0"),
        ({":scheduling": {"vcpu_load": 1.5}}, "scheduling.vcpu_load: must be <= 1.0, got 1.5"),
        ({":scheduling": {"reservation_timeout": 0}}, "scheduling.reservation_timeout: must be > 0.0, got 0"),
        ({":scheduling": {"rebalance_threshold": 0}}, "scheduling.rebalance_threshold: must be > 0.0, got 0"),
        ({":scheduling": {"rebalance_threshold": 120}}, "scheduling.rebalance_threshold: must be <= 100.0, got 120"),
        ({":scheduling": {"rebalance_sustain": -1}}, "scheduling.rebalance_sustain: must be >= 0.0, got -1"),
        ({":scheduling": {"rebalance_interval": 0}}, "scheduling.rebalance_interval: must be > 0.0, got 0"),
        ({":scheduling": {"rebalance": "sometimes"}}, "scheduling.rebalance: must be true or false, got 'sometimes'"),
    ],
)
def test_placement_settings_are_checked(doc: dict, problem: str):
    assert problems_of(doc) == [problem]


@pytest.mark.parametrize("bad", [0, -2, 1.5, "one"])
def test_anti_affinity_must_be_a_flag_or_a_count(bad):
    problems = problems_of({":pools": [{"name": "p", "template": "t", "size": 1, "anti_affinity": bad}]})
    assert problems == [f"pools[0].anti_affinity: must be true, false or a whole number >= 1 (a limit per host), "
                        f"got {bad!r}"]


def test_domain_pools_map_anti_affinity_and_fall_back_to_the_global_clone_target():
    pools = [
        {"name": "one", "template": "t", "size": 1, "anti_affinity": True},
        {"name": "three", "template": "t", "size": 1, "anti_affinity": 3, "clone_target": "cluster2"},
        {"name": "off", "template": "t", "size": 1, "anti_affinity": False},
        {"name": "unset", "template": "t", "size": 1},
    ]
    config, warnings = parse_config({**SIM_ONLY, ":config": {"clone_target": "cluster1"}, ":pools": pools})
    got = {p.name: (p.max_per_host, p.clone_target) for p in config.domain_pools()}
    assert got == {"one": (1, "cluster1"), "three": (3, "cluster2"), "off": (None, "cluster1"),
                   "unset": (None, "cluster1")}
    assert warnings == []
    config, _ = parse_config({**SIM_ONLY, ":pools": pools[3:]})
    assert config.domain_pools()[0].clone_target is None, "no clone target anywhere: none"


def test_runner_defaults_and_vmpooler_retry_and_breaker_keys():
    from corral.config.settings import runner_settings

    config, warnings = parse_config(SIM_ONLY)
    r = runner_settings(config)
    assert (r.window_s, r.batch_size, r.task_limit, r.host_limit) == (0.1, 1000, 10, 4)
    assert (r.queue_limit, r.refill_share, r.max_tries, r.retry_delay_s) == (10_000, 0.5, 3, 1.0)
    assert (r.breakers.enabled, r.breakers.failure_threshold, r.breakers.timeout_s) == (True, 5, 30)
    assert warnings == []
    doc = {**SIM_ONLY, ":config": {"task_limit": 20, "max_tries": 5, "circuit_breaker_enabled": False,
                                   "circuit_breaker_failure_threshold": 2, "circuit_breaker_timeout": 9},
           ":runner": {"aggregation_window": 0.25, "batch_size": 50, "host_task_limit": 2, "queue_limit": 100,
                       "refill_share": 0.8, "retry_delay": 0.5, "retry_delay_max": 10}}
    config, warnings = parse_config(doc)
    r = runner_settings(config)
    assert (r.window_s, r.batch_size, r.task_limit, r.host_limit, r.queue_limit) == (0.25, 50, 20, 2, 100)
    assert (r.refill_share, r.max_tries, r.retry_delay_s, r.retry_delay_max_s) == (0.8, 5, 0.5, 10)
    assert (r.breakers.enabled, r.breakers.failure_threshold, r.breakers.timeout_s) == (False, 2, 9)
    assert warnings == []


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({":config": {"max_tries": 0}}, "config.max_tries: must be >= 1, got 0"),
        ({":runner": {"aggregation_window": -1}}, "runner.aggregation_window: must be >= 0.0, got -1"),
        ({":runner": {"batch_size": 0}}, "runner.batch_size: must be >= 1, got 0"),
        ({":runner": {"host_task_limit": 0}}, "runner.host_task_limit: must be >= 1, got 0"),
        ({":runner": {"refill_share": 0}}, "runner.refill_share: must be > 0.0, got 0"),
        ({":config": {"circuit_breaker_timeout": 0}}, "config.circuit_breaker_timeout: must be > 0.0, got 0"),
        ({":pools": [{"name": "p", "template": "t", "size": 1, "ha": "maybe"}]},
         "pools[0].ha: must be true or false, got 'maybe'"),
        ({":pools": [{"name": "p", "template": "t", "size": 1, "priority": "high"}]},
         "pools[0].priority: must be a whole number, got 'high'"),
    ],
)
def test_runner_settings_are_checked(doc: dict, problem: str):
    assert problems_of(doc) == [problem]


def test_pools_carry_ha_and_priority():
    pools = [{"name": "ha", "template": "t", "size": 1, "ha": True, "priority": 5},
             {"name": "plain", "template": "t", "size": 1}]
    config, warnings = parse_config({**SIM_ONLY, ":pools": pools})
    assert {p.name: (p.ha, p.priority) for p in config.domain_pools()} == {"ha": (True, 5), "plain": (False, 0)}
    assert warnings == []


def test_vsphere_keys_reach_the_provider_with_their_defaults():
    from corral.runtime import build_providers

    config, _ = load_config(REFERENCE)
    providers = build_providers(config)
    vsphere = providers["vsphere"]
    pools = vsphere.pools  # type: ignore[attr-defined]
    assert pools["debian-7-i386"].datastore == "vmstorage" and pools["debian-7-i386"].linked_clone is True
    assert pools["debian-7-x86_64"].linked_clone is False
    assert pools["debian-7-x86_64"].extra_config == {"mainMem.ioBlockPages": "2048", "mainMem.iowait": "0"}
    assert pools["debian-7-i386"].template == "Templates/debian-7-i386"
    assert vsphere.settings.server == "vsphere.example.com"  # type: ignore[attr-defined]


def test_vsphere_settings_errors_name_the_key_and_hide_the_password():
    doc = {":providers": {":vsphere": {"server": "vc", "username": "u", "password": ["hunter2"],
                                       "concurency": 4, "feed_max_wait": 0}},
           ":pools": [{"name": "p", "template": "t", "size": 1}]}
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    text = str(err.value)
    assert "providers.vsphere.concurency" in text and "providers.vsphere.feed_max_wait: must be >= 1" in text
    assert "providers.vsphere.password" in text and "hunter2" not in text


# -- pool names and aliases: the API's rule ----------------------------------------------------


def test_pool_names_and_aliases_follow_the_api_rule():
    pools = [{"name": "ok", "template": "t", "size": 1},
             {"name": "fine", "template": "t", "size": 1, "alias": ["good", "a+b"]},
             {"name": "debian 12", "template": "t", "size": 1},
             {"name": "x/../y", "template": "t", "size": 1, "alias": "\U0001F40D"}]
    problems = problems_of({":pools": pools})
    rule = "must be 1 to 100 letters, digits, '.', '_' or '-'"
    assert problems == [
        f"pools[1].alias[1]: {rule}, got 'a+b'",
        f"pools[2].name: {rule}, got 'debian 12'",
        f"pools[3].name: {rule}, got 'x/../y'",
        f"pools[3].alias[0]: {rule}, got '\U0001F40D'",
    ]


def test_config_check_refuses_a_pool_name_the_api_would_refuse(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({":providers": {":sim": {"provider_class": "sim"}},
                                   ":pools": [{"name": "debian 12", "template": "t", "size": 1}]}))
    out = run_cli("config", "check", str(bad))
    assert out.returncode == 2 and "pools[0].name: must be 1 to 100 letters" in out.stderr


# -- history retention: vmpooler's :redis: data_ttl --------------------------------------------


@pytest.mark.parametrize(
    ("config_ttl", "redis_ttl", "hours", "warned"),
    [
        (None, None, 168, False),
        (None, 24, 24, False),
        (48, None, 48, False),
        (48, 48, 48, False),
        (48, 24, 48, True),
        (0, 24, 0, True),
    ],
)
def test_history_ttl_honours_vmpoolers_redis_data_ttl(config_ttl, redis_ttl, hours, warned):
    doc: dict = {**SIM_ONLY}
    if config_ttl is not None:
        doc[":config"] = {"data_ttl": config_ttl}
    if redis_ttl is not None:
        doc[":redis"] = {"server": "localhost", "data_ttl": redis_ttl}
    config, warnings = parse_config(doc)
    assert config.history_ttl_hours == hours
    expected = [f"config.data_ttl ({config_ttl} hours) and redis.data_ttl ({redis_ttl} hours) differ; "
                f"config.data_ttl is used"] if warned else []
    assert warnings == expected


def test_redis_data_ttl_must_not_be_negative():
    assert problems_of({":redis": {"data_ttl": -1}}) == ["redis.data_ttl: must be >= 0.0, got -1"]


@pytest.mark.parametrize("section, key", [(":config", "vm_lifetime"), (":config", "vm_lifetime_auth"),
                                          (":config", "max_lifetime_upper_limit"), ("pool", "vm_lifetime")])
def test_lifetimes_past_the_hard_cap_are_refused(section, key):
    from corral.domain.limits import MAX_LIFETIME_HOURS

    pool = {"name": "p", "template": "t", "size": 1}
    doc: dict = {":providers": {":sim": {"provider_class": "sim"}}, ":pools": [pool]}
    if section == "pool":
        pool[key] = 1e20
        where = f"pools[0].{key}"
    else:
        doc[section] = {key: 1e20}
        where = f"config.{key}"
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert f"{where}: must be <= {float(MAX_LIFETIME_HOURS)}, got 1e+20" in err.value.problems
