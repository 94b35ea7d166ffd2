"""`:store: type: redis` and `:redis:`: the store corral builds from them, the errors it
gives when Redis cannot be reached or refuses the password, and a password shown nowhere."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.bench.common import free_port
from corral.bench.redisd import RedisServer
from corral.config import ConfigError, parse_config
from corral.config.view import safe_view
from corral.runtime import build_store
from corral.store.redis import RedisStore
from corral.store.sqlite import SqliteStore
from helpers import quick_config

SECRET = "pw-Cfg-5510-never-shown"
POOLS = [{"name": "p", "template": "t", "size": 1}]


@pytest.fixture(scope="module")
def locked() -> Iterator[RedisServer]:
    with RedisServer(password=SECRET) as server:
        yield server


def document(tmp_path: Path, port: int, password: str | None = SECRET, site: str = "cfg-test") -> dict[str, Any]:
    doc = quick_config(tmp_path, POOLS)
    doc[":store"] = {"type": "redis", "site": site}
    doc[":redis"] = {"server": "127.0.0.1", "port": port, **({"password": password} if password else {})}
    return doc


def corral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral.cli", *args], capture_output=True, text=True, timeout=120)


def test_sqlite_stays_the_default(tmp_path: Path) -> None:
    config, _ = parse_config(quick_config(tmp_path, POOLS))
    assert (config.store.type, config.store.site) == ("sqlite", "default")
    store = build_store(config)
    try:
        assert isinstance(store, SqliteStore)
    finally:
        store.close()


def test_redis_store_is_built_from_the_config(tmp_path: Path, locked: RedisServer, redis_site: str) -> None:
    config, _ = parse_config(document(tmp_path, locked.port, site=redis_site))
    store = build_store(config)
    try:
        assert isinstance(store, RedisStore)
        assert repr(store) == f"RedisStore(127.0.0.1:{locked.port}, site={redis_site!r})"
        assert store.ping() > 0
    finally:
        store.close()


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        ({"type": "mongo"}, "store.type"),
        ({"type": "redis", "site": ""}, "store.site"),
        ({"type": "redis", "site": "a b"}, "store.site"),
    ],
)
def test_bad_store_settings_are_named(tmp_path: Path, store: dict[str, Any], problem: str) -> None:
    doc = quick_config(tmp_path, POOLS)
    doc[":store"] = store
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        (SECRET + "-wrong", "refused the password (:redis: password)"),
        (None, "wants a password and none is configured (:redis: password)"),
    ],
)
def test_a_refused_password_is_a_clear_config_error(tmp_path: Path, locked: RedisServer, password: str | None,
                                                     reason: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config, _ = parse_config(document(tmp_path, locked.port, password))
    with pytest.raises(ConfigError) as info:
        build_store(config)
    assert info.value.problems == [f"redis: Redis at 127.0.0.1:{locked.port} {reason}"]
    assert SECRET not in str(info.value) and SECRET not in caplog.text


def test_serve_names_a_redis_it_cannot_reach(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(document(tmp_path, port)))
    out = corral("serve", "--config", str(cfg), "--port", str(free_port()))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"error: redis: Redis at 127.0.0.1:{port} cannot be reached: ")
    assert SECRET not in out.stderr + out.stdout


def test_config_check_and_the_config_view_hide_the_password(tmp_path: Path, locked: RedisServer) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(document(tmp_path, locked.port)))
    out = corral("config", "check", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "store redis" in out.stdout and SECRET not in out.stdout + out.stderr
    config, _ = parse_config(document(tmp_path, locked.port))
    view = safe_view(config)
    assert view["store"] == {"type": "redis", "path": "var/corral.db", "site": "cfg-test", "lock_wait": 2.0}
    assert view["redis"]["port"] == locked.port and SECRET not in str(view)
