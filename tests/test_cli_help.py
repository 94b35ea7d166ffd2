"""The corral command's help, completion, local commands and the pure decisions of its
client commands."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.cli import command
from corral.cli.remote import (
    Answer,
    CliProblem,
    Exit,
    base_url,
    check_token,
    check_user,
    exit_for,
    parse_wanted,
    read_password,
    reason_of,
    shown_url,
)
from corral.cli.status import host_state, runner_line, status_line
from corral.cli.text import count
from corral.cli.vms import hostnames, info_rows, worth_waiting
from helpers import quick_config


def corral(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral.cli", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, **kw)


# -- help ------------------------------------------------------------------------------------------
def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the corral command, as the words that name it."""
    paths: list[tuple[str, ...]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, (*path, name))

    walk(command(), ())
    return paths


def rendered_help(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    with redirect_stdout(out):
        command().main(args=[*path, "--help"], prog_name="corral", standalone_mode=False)
    return out.getvalue()


PATHS = command_paths()
RST = re.compile(r"``|:[a-z_]+:`")  # double backticks, roles such as :ref:`x`
WRONG_PLURAL = re.compile(r"\b1 (pools|VMs|providers|hosts|tokens|problems|managers|seconds|calls)\b")


def test_the_walk_finds_every_command_and_group() -> None:
    found = {" ".join(p) for p in PATHS}
    assert {"", "checkout", "return", "vm", "status", "token", "token create", "token list", "token delete",
            "config check", "auth hash-password", "serve", "version", "bench", "bench fill"} <= found


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "corral")
def test_help_is_plain_with_an_example(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    text = rendered_help(path, monkeypatch)
    assert "Usage: corral" in text and "--help" in text
    assert not RST.search(text), f"RST markup in the help of {path}"
    assert "<bool>" not in text, f"a type shown beside a flag in the help of {path}"
    assert "[/" not in text and "[bold" not in text, "rich markup is rendered, not printed"
    assert not WRONG_PLURAL.search(text)
    assert re.search(r"^ Examples?: .*\bcorral [a-z]", text, re.M), f"no example in the help of {path}"


def test_flags_show_no_type_and_options_with_values_do(monkeypatch: pytest.MonkeyPatch) -> None:
    text = rendered_help(("checkout",), monkeypatch)
    wait = next(line for line in text.splitlines() if "--wait" in line and "When the pools" in line)
    assert re.search(r"--wait\s+When the pools", wait), wait
    assert re.search(r"--timeout\s+<float range>", text)
    assert "POOL[=N]" in text, "the argument's name is printed as written, not read as markup"


def test_help_through_the_installed_entry_point_matches() -> None:
    out = corral("token", "create", "--help", env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert "Usage: corral token create" in out.stdout and "<bool>" not in out.stdout
    assert "Example: corral token create --user alice" in out.stdout


def test_shell_completion_prints_a_script() -> None:
    out = corral("--show-completion", "bash", env={"HOME": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    assert "complete " in out.stdout and "_corral_completion" in out.stdout and "_CORRAL_COMPLETE" in out.stdout


# -- local commands --------------------------------------------------------------------------------
def test_hash_password_reads_a_pipe_without_a_flag_or_a_warning() -> None:
    import asyncio

    from corral.auth.static import StaticAuthenticator

    out = corral("auth", "hash-password", input="pipe pass word\n")
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", "no getpass warning, no prompt"
    encoded = out.stdout.strip()
    assert encoded.startswith("pbkdf2_sha256$") and "pipe pass" not in out.stdout
    assert asyncio.run(StaticAuthenticator({"u": encoded}).authenticate("u", "pipe pass word")) is True
    empty = corral("auth", "hash-password", input="")
    assert empty.returncode == 2 and empty.stderr == "error: the password is empty\n" and empty.stdout == ""


@pytest.mark.parametrize(("pools", "providers", "expected"), [
    ([("a", 1)], 1, "1 pool, 1 VM, 1 provider"),
    ([("a", 2), ("b", 0)], 2, "2 pools, 2 VMs, 2 providers"),
])
def test_config_check_counts_with_the_right_nouns(tmp_path: Path, pools: list[tuple[str, int]], providers: int,
                                                  expected: str) -> None:
    doc = quick_config(tmp_path, [{"name": n, "template": "t", "size": s, "provider": f"sim{i % providers or ''}"}
                                  for i, (n, s) in enumerate(pools)])
    if providers == 2:
        doc[":providers"][":sim1"] = {**doc[":providers"][":sim"], "provider_class": "sim"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    out = corral("config", "check", str(cfg))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{cfg}: ok: {expected}, store sqlite\n"
    assert out.stderr == "", "no status line when standard error is not a terminal"


def test_config_check_names_one_problem_in_the_singular(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    doc = quick_config(tmp_path, [{"name": "p", "template": "t", "size": "many", "provider": "sim"}])
    bad.write_text(yaml.safe_dump(doc))
    out = corral("config", "check", str(bad))
    assert out.returncode == 2
    assert "configuration is invalid (1 problem):" in out.stderr, out.stderr


# -- pure decisions --------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "noun", "text"), [
    (0, "pool", "0 pools"), (1, "pool", "1 pool"), (2, "pool", "2 pools"), (1, "VM", "1 VM"), (3, "VM", "3 VMs"),
    (1, "provider", "1 provider"), (2, "empty pool", "2 empty pools"),
])
def test_count(n: int, noun: str, text: str) -> None:
    assert count(n, noun) == text


@pytest.mark.parametrize(("args", "wanted"), [
    (["a"], {"a": 1}),
    (["a", "a", "b=3"], {"a": 2, "b": 3}),
    (["a=2", "a=5"], {"a": 7}),
    (["x.y_z-1=100"], {"x.y_z-1": 100}),
])
def test_parse_wanted(args: list[str], wanted: dict[str, int]) -> None:
    assert parse_wanted(args) == wanted


@pytest.mark.parametrize(("args", "complaint"), [
    ([], "name at least one pool"),
    (["a=0"], "from 1 to 100"),
    (["a=101"], "from 1 to 100"),
    (["a=x"], "from 1 to 100"),
    (["a="], "from 1 to 100"),
    (["a=" + "9" * 5000], "from 1 to 100"),
    (["a=60", "a=41"], "a: at most 100 VMs per pool"),
    (["a/b"], "a pool name is 1-100 letters"),
    (["=3"], "a pool name is 1-100 letters"),
    (["p" * 101], "a pool name is 1-100 letters"),
])
def test_parse_wanted_refuses(args: list[str], complaint: str) -> None:
    with pytest.raises(CliProblem, match=re.escape(complaint)) as caught:
        parse_wanted(args)
    assert caught.value.code is Exit.USAGE and len(str(caught.value)) < 200


@pytest.mark.parametrize(("status", "code"), [
    (200, Exit.OK), (201, Exit.OK), (400, Exit.REFUSED), (404, Exit.REFUSED), (401, Exit.AUTH), (403, Exit.AUTH),
    (429, Exit.LATER), (503, Exit.LATER), (500, Exit.REFUSED),
])
def test_exit_for(status: int, code: Exit) -> None:
    assert exit_for(status) is code


@pytest.mark.parametrize(("body", "reason"), [
    ({"ok": False, "error": "no VM named x"}, "no VM named x"),
    ({"ok": False, "reason": "elsewhere"}, "elsewhere"),
    ({"ok": False, "failure": ["a"], "message": "bad"}, "bad"),
    ({"ok": False}, ""),
    (["not", "a", "mapping"], ""),
    ({"error": "two\nlines\x1b[31m"}, "two lines [31m"),
    ({"error": "x" * 1000}, "x" * 300 + "..."),
])
def test_reason_of(body: Any, reason: str) -> None:
    assert reason_of(body) == reason


def test_an_answer_names_the_server_status_and_reason_without_a_password_in_the_url() -> None:
    problem = Answer(401, {"ok": False, "error": "invalid user name or password"}).problem(
        "http://bob:hunter2@corral:8080", "token list")
    assert str(problem) == "token list: corral at http://corral:8080 answered 401: invalid user name or password"
    assert problem.code is Exit.AUTH


@pytest.mark.parametrize(("url", "base"), [
    ("http://corral:8080", "http://corral:8080"),
    ("http://corral:8080/", "http://corral:8080"),
    ("http://corral:8080/api/v3", "http://corral:8080"),
    ("https://example.com/pooler/api/v3/", "https://example.com/pooler"),
])
def test_base_url(url: str, base: str) -> None:
    assert base_url(url) == base


@pytest.mark.parametrize("url", ["corral:8080", "ftp://corral", "http://", "http://" + "a" * 3000])
def test_base_url_refuses(url: str) -> None:
    with pytest.raises(CliProblem) as caught:
        base_url(url)
    assert caught.value.code is Exit.USAGE and len(str(caught.value)) < 2100


def test_shown_url_drops_credentials() -> None:
    assert shown_url("http://u:secret@h:1/x") == "http://h:1/x"
    assert shown_url("http://h:1") == "http://h:1"


def test_tokens_and_users_are_checked_without_repeating_the_token() -> None:
    assert check_token("abc_DEF-123") == "abc_DEF-123" and check_token("") is None and check_token(None) is None
    for bad in ("with space", "new\nline", "x" * 65, "ünï"):
        with pytest.raises(CliProblem) as caught:
            check_token(bad)
        assert bad not in str(caught.value) and caught.value.code is Exit.USAGE
    assert check_user("alice") == "alice"
    for user in (None, "", "a:b", "x" * 201, "tab\there"):
        with pytest.raises(CliProblem):
            check_user(user)


def test_read_password() -> None:
    assert read_password(io.StringIO("pw with spaces\r\nsecond line\n")) == "pw with spaces"
    for text, complaint in (("", "empty"), ("\n", "empty"), ("x" * 5000, "longer than 4096")):
        with pytest.raises(CliProblem, match=complaint):
            read_password(io.StringIO(text))


def test_hostnames_of_a_checkout_answer() -> None:
    body = {"ok": True, "a": {"hostname": "h1.example.com"}, "b": {"hostname": ["h2", "h3"]}, "domain": "x"}
    assert hostnames(body) == [("a", "h1.example.com"), ("b", "h2"), ("b", "h3")]


@pytest.mark.parametrize(("answer", "wait"), [
    (Answer(503, {"ok": False, "error": "not enough ready VMs: a has 0 ready", "empty": ["a"]}), True),
    (Answer(503, {"ok": False, "error": "taken by other checkouts", "empty": []}), True),
    (Answer(503, {"ok": False, "error": "too many logins in progress"}), False),
    (Answer(404, {"ok": False, "error": "unknown pool"}), False),
    (Answer(200, {"ok": True}), False),
])
def test_worth_waiting(answer: Answer, wait: bool) -> None:
    assert worth_waiting(answer) is wait


def test_info_rows_in_a_set_order_with_unknown_fields_last() -> None:
    rows = info_rows({"zeta": 1, "ip": "10.0.0.1", "state": "running", "tags": {"a": "b", "c": "d"},
                      "disk": ["+10gb"], "template": "debian", "lifetime": 24})
    assert rows == [("state", "running"), ("pool", "debian"), ("ip", "10.0.0.1"), ("lifetime (hours)", "24"),
                    ("tags", "a=b, c=d"), ("disks", "+10gb"), ("zeta", "1")]


@pytest.mark.parametrize(("row", "state"), [
    ({"up": True, "down": False, "maintenance": False, "health": "ok"}, "ok"),
    ({"up": False, "down": True, "maintenance": False, "health": "down"}, "down"),
    ({"up": False, "down": False, "maintenance": True, "health": "ok"}, "not responding, maintenance"),
    ({"up": True, "down": False, "maintenance": True, "health": "ok"}, "maintenance"),
])
def test_host_state(row: dict[str, Any], state: str) -> None:
    assert host_state(row) == state


def test_runner_and_status_lines_count_right() -> None:
    line = runner_line({"queued": 1, "queued_by_class": {"clone": 1, "destroy": 0}, "queue_limit": 500,
                        "calls_in_flight": 1, "calls_waiting": 0, "created": 1, "failed": 2})
    assert line == ("runner: 1 work item queued (clone 1) of at most 500; 1 call in flight, 0 waiting; "
                    "1 VM created, 2 failures")
    assert status_line({"ok": False, "message": "Found 1 empty pools.", "empty": ["a"]}) == "1 empty pool: a"
    assert status_line({"ok": True, "message": "fine"}) == "fine"


def test_config_check_of_a_big_file_shows_a_status_line_on_a_terminal_only(tmp_path: Path) -> None:
    from helpers import corral_with_terminal_stderr

    doc = quick_config(tmp_path, [{"name": "p", "template": "t", "size": 1, "provider": "sim"}])
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(doc) + "# a comment line that makes the file bigger than a megabyte\n" * 20_000)
    code, out, terminal = corral_with_terminal_stderr(["config", "check", str(big)], {**os.environ, "COLUMNS": "120"})
    assert code == 0 and out == f"{big}: ok: 1 pool, 1 VM, 1 provider, store sqlite\n"
    assert f"checking {big} (1.2 MB)" in terminal
    piped = corral("config", "check", str(big))
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout == out


def test_the_readme_shows_every_command_with_an_example() -> None:
    from helpers import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Commands"):]
    section = section[:section.index("\n## ", 1)]
    leaves = [p for p in PATHS if p and not getattr(command_at(p), "commands", None)]
    for path in leaves:
        name = " ".join(path)
        row = next((line for line in section.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"README's Commands section has no row for corral {name}"
        assert f"corral {name}" in row, f"the README row of corral {name} has no example"


def command_at(path: tuple[str, ...]) -> Any:
    cmd = command()
    for word in path:
        cmd = cmd.commands[word]
    return cmd
