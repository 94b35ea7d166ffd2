"""Secrets stay out of /config and /full_config: only keys the configuration model declares
and that are not secret are shown, and URLs lose their user:password@ part."""

from __future__ import annotations

SECRETS = ["Typo-Pw-1", "Vc-Pwd-2", "Cred-Pw-3", "Statsd-Pw-4", "Pass-Phrase-5", "Redis-Pw-6", "Extra-Cfg-7",
           "Sim-Nested-8", "Host-Pw-9"]


def test_planted_secrets_are_absent_from_config_and_full_config(make_server):
    pools = [{"name": "a", "alias": ["alpha"], "template": "t/a", "size": 1, "ssh_passphrase": "Pass-Phrase-5"},
             {"name": "b", "template": "t/b", "size": 2}]
    extra = {
        ":statsd": {"server": "statsd.example.com", "prefix": "corral", "shared_secret": "Statsd-Pw-4"},
        ":credentials": {"user": "admin", "password": "Cred-Pw-3"},
        ":redis": {"server": "redis://ruser:Redis-Pw-6@redis.example.com/0", "data_ttl": 24},
    }
    # unknown keys of vmpooler's dummy provider are warnings (a simulator's would be errors)
    sim = {"provider_class": "dummy", "pasword": "Typo-Pw-1", "vcenter_pwd": "Vc-Pwd-2",
           "latency": {"boot": 10.0, "tokn": "Sim-Nested-8"},
           "host_defaults": {"cores": 16, "root_pw": "Host-Pw-9"}}
    server = make_server(pools, sim=sim, extra=extra, task_limit=7, prefix="poolvm-", api_pass="Extra-Cfg-7")

    config = server.client.get("/config")
    full = server.client.get("/full_config")
    assert config.status_code == 200 and full.status_code == 200
    for body in (config.text, full.text):
        for secret in SECRETS:
            assert secret not in body, f"{secret} leaked"
        for key in ("pasword", "vcenter_pwd", "credentials", "ssh_passphrase", "shared_secret", "api_pass", "tokn",
                    "root_pw"):
            assert f'"{key}"' not in body, f"unknown key {key} shown"

    entries = {p["name"]: p for p in config.json()["pool_configuration"]}
    assert {n: (p["size"], p["template"], p["alias"]) for n, p in entries.items()} == {
        "a": (1, "t/a", ["alpha"]), "b": (2, "t/b", [])}
    data = full.json()["full_config"]
    assert data["config"]["task_limit"] == 7 and data["config"]["prefix"] == "poolvm-"
    assert data["redis"]["server"] == "redis://redis.example.com/0" and data["redis"]["data_ttl"] == 24
    assert data["statsd"]["server"] == "statsd.example.com" and data["statsd"]["prefix"] == "corral"
    assert {p["name"] for p in data["pools"]} == {"a", "b"}
    sim_view = data["providers"]["sim"]
    assert sim_view["provider_class"] == "dummy" and sim_view["time_scale"] == 0.001
    assert sim_view["latency"]["boot"] == 10.0 and sim_view["host_defaults"]["cores"] == 16
    assert data["runner"]["aggregation_window"] == 0.01
