"""The :ha: section: defaults, checks that name the problem, and the manager's settings built from it."""

from __future__ import annotations

import os
import socket

import pytest

from corral.config import ConfigError
from corral.config.load import parse_config
from corral.config.settings import ha_settings


def test_defaults_give_the_documented_lease_and_a_host_pid_name() -> None:
    s = ha_settings(parse_config({})[0])
    assert (s.ttl_s, s.renew_every_s, s.safety, s.score_threshold) == (5.0, 1.0, 0.6, 50)
    assert s.manager_id == f"{socket.gethostname()}:{os.getpid()}"
    assert s.trusted_s == pytest.approx(3.0)


def test_the_name_comes_from_the_command_line_then_the_file() -> None:
    cfg, _ = parse_config({":ha": {"manager_id": "east-1", "lease_ttl": 10, "renew_every": 2}})
    assert ha_settings(cfg).manager_id == "east-1"
    assert ha_settings(cfg, "west-2").manager_id == "west-2"
    assert ha_settings(cfg).ttl_s == 10 and ha_settings(cfg).renew_every_s == 2


@pytest.mark.parametrize(("doc", "problem"), [
    ({"lease_ttl": 2, "renew_every": 1.5}, "renew_every (1.5 s) must be below lease_ttl × safety (1.20 s)"),
    ({"lease_ttl": 0}, "ha.lease_ttl"),
    ({"safety": 1}, "ha.safety"),
    ({"manager_id": ""}, "ha.manager_id"),
    ({"score_threshold": 101}, "ha.score_threshold"),
])
def test_bad_values_are_named(doc: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({":ha": doc})
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_a_blank_name_from_the_command_line_is_a_config_error() -> None:
    cfg, _ = parse_config({})
    with pytest.raises(ConfigError) as err:
        ha_settings(cfg, "  ")
    assert err.value.problems == ["ha: HaSettings: manager_id is empty; every manager of a site needs a name "
                                  "of its own"]
