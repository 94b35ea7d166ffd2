"""Reading the YAML file: aliases that loop or explode, and keys given twice, are clean errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from corral.config import ConfigError, load_config, parse_config

SIM = ":providers:\n  :sim:\n    provider_class: sim\n"


def problems_of_file(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value.problems


def billion_laughs(levels: int = 10, width: int = 10) -> str:
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return SIM + ":extra:\n" + "\n".join("  " + line for line in lines) + "\n"


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", SIM + ":pools:\n  - &p {name: x, more: [*p]}\n"])
def test_a_recursive_alias_is_a_clean_error(tmp_path: Path, text: str):
    (problem,) = problems_of_file(tmp_path, text)
    assert "recursive alias" in problem and "(line " in problem


def test_aliases_that_expand_too_far_are_refused_fast(tmp_path: Path):
    start = time.monotonic()
    (problem,) = problems_of_file(tmp_path, billion_laughs())
    assert time.monotonic() - start < 1.0
    assert "expands to more than 200000 values" in problem


def test_a_few_aliases_of_a_small_block_are_fine(tmp_path: Path):
    text = SIM + ("defaults: &d {template: t, size: 1}\n:pools:\n"
                  "  - {<<: *d, name: a}\n  - {<<: *d, name: b, size: 2}\n")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    config, _ = load_config(path)
    assert [(p.name, p.size) for p in config.pools] == [("a", 1), ("b", 2)]


def test_nesting_too_deep_is_a_clean_error(tmp_path: Path):
    (problem,) = problems_of_file(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested more than 64 levels deep" in problem


def test_a_section_in_both_spellings_is_an_error_naming_both(tmp_path: Path):
    text = SIM + ":pools:\n  - {name: a, template: t, size: 1}\npools:\n  - {name: b, template: t, size: 1}\n"
    assert problems_of_file(tmp_path, text) == ["pools: given both as ':pools' and 'pools'; keep one"]


def test_a_key_in_both_spellings_deeper_down_is_an_error():
    doc = {":providers": {":sim": {"provider_class": "sim"}},
           ":config": {":task_limit": 2, "task_limit": 3},
           ":pools": [{"name": "a", "template": "t", "size": 1, ":size": 2}]}
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert err.value.problems == ["config.task_limit: given both as ':task_limit' and 'task_limit'; keep one",
                                  "pools[0].size: given both as 'size' and ':size'; keep one"]


def test_a_key_given_twice_in_one_mapping_is_an_error(tmp_path: Path):
    text = SIM + ":pools:\n  - name: a\n    template: t\n    size: 1\n    size: 5\n"
    (problem,) = problems_of_file(tmp_path, text)
    assert problem.endswith("key 'size' is given twice in one mapping (first on line 7)"), problem
    assert "(line 8, column 5)" in problem


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a: \xff\xfe\n", "not UTF-8 text (byte 4)"),
        (b'a: "\x00"\n', "not valid YAML: unacceptable character #x0000 at position 4"),
    ],
)
def test_bytes_that_are_not_yaml_text_are_clean_errors(tmp_path: Path, data: bytes, expected: str):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems == [f"{path}: {expected}"]
