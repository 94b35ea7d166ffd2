"""docs/configuration.md's tables are made from the configuration model and cannot drift from it."""

from __future__ import annotations

import subprocess
import sys
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, SecretStr

from corral.config.docs import COMMAND, KeyRow, SectionDoc, default_text, fill, model_rows, sections, type_text
from corral.config.load import normalise
from corral.config.schema import Config
from corral.config.yaml import read_yaml
from corral.domain.settings_model import SettingsModel
from helpers import REFERENCE, REPO

PAGE = REPO / "docs" / "configuration.md"


def test_the_checked_in_page_is_what_the_model_gives():
    text = PAGE.read_text(encoding="utf-8")
    assert fill(text, sections()) == text, f"docs/configuration.md differs from the configuration model; run: {COMMAND}"


def test_check_command_names_the_fix_for_a_stale_page(tmp_path):
    stale = tmp_path / "configuration.md"
    text = PAGE.read_text(encoding="utf-8")
    stale.write_text(text.replace("| `task_limit` |", "| `task_limit_old` |"), encoding="utf-8")
    check = [sys.executable, "-m", "corral.config.docs", "--check"]
    ok = subprocess.run([*check, str(PAGE)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*check, str(stale)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and COMMAND in bad.stderr
    fixed = subprocess.run([sys.executable, "-m", "corral.config.docs", "--output", str(stale)],
                           capture_output=True, text=True, timeout=60)
    assert fixed.returncode == 0 and stale.read_text(encoding="utf-8") == text


@pytest.mark.parametrize(("annotation", "metadata", "expected"), [
    (int, [], "integer"),
    (float, [Field(gt=0, le=600)], "number, > 0, ≤ 600"),
    (bool | None, [], "bool"),
    (SecretStr | None, [], "secret string"),
    (Literal["name", "guest_ip"], [], "`name` or `guest_ip`"),
    (Literal["a", "b", "c"], [], "`a`, `b` or `c`"),
    (list[str], [Field(min_length=1)], "list of string, at least 1 long"),
    (dict[str, float], [], "map: name → number"),
    (Annotated[int, Field(ge=1)] | list[str], [], "integer, ≥ 1 or list of string"),
    (str, [Field(min_length=1, max_length=100, pattern=r"^[a-z]+$")],
     "string, at least 1 long, at most 100 long, matching `^[a-z]+$`"),
    (Any, [], "anything"),
])
def test_type_text(annotation, metadata, expected):
    assert type_text(annotation, metadata) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, "none"),
    (True, "`true`"),
    (15.0, "`15`"),
    (0.25, "`0.25`"),
    ("", '`""`'),
    ("vmpooler", "`vmpooler`"),
    ([], "`[]`"),
    (["avx", "aes"], "`[avx, aes]`"),
    ({"a": 1}, "`{a: 1}`"),
    (SecretStr("hunter2"), "(secret)"),
])
def test_default_text(value, expected):
    assert default_text(value) == expected


# -- the walk, on a model made for the test --------------------------------------------------


class Inner(SettingsModel):
    known_unused = frozenset({"old_inner"})
    depth: int = Field(3, ge=0, description="how deep")


class Entry(SettingsModel):
    label: str = Field(description="the entry's label")


class Outer(SettingsModel):
    known_unused = frozenset({"old"})
    corral_keys = frozenset({"mine"})
    not_acted_on = frozenset({"inert", "nested"})
    size: int = Field(1, description="how many")
    mine: bool = Field(False, description="corral's")
    inert: str | None = Field(None, description="read, unused")
    nested: Inner = Field(default_factory=lambda: Inner(depth=7), description="a section")
    entries: list[Entry] = Field(default_factory=list, description="the entries")
    named: dict[str, Entry] = Field(default_factory=dict, description="named entries")


class Own(SettingsModel):
    corral_only = True
    inner: Inner = Field(default_factory=Inner, description="a section of corral's")


def test_rows_walk_nested_sections_lists_and_maps():
    rows = {row.key: row for row in model_rows(Outer)}
    assert list(rows) == ["size", "mine", "inert", "nested", "nested.depth", "entries", "entries[].label", "named",
                          "named.NAME.label"]
    assert rows["size"] == KeyRow("size", "integer", "`1`", corral=False, acts=True, meaning="how many")
    assert rows["mine"].corral and not rows["size"].corral
    assert not rows["inert"].acts and rows["inert"].default == "none"
    assert rows["nested.depth"].default == "`7`", "the default of a section's key is the section default's"
    assert not rows["nested.depth"].acts, "a key inside a key corral does not act on is not acted on either"
    assert rows["entries[].label"].default == "required"
    assert rows["named"].type == "map: name → entry"


def test_a_corral_only_model_marks_the_models_inside_it():
    rows = {row.key: row for row in model_rows(Own)}
    assert rows["inner.depth"].corral and rows["inner.depth"].default == "`3`"
    assert not {row.key: row for row in model_rows(Inner)}["depth"].corral


class Plain(BaseModel):
    endpoint: str = Field("/metrics", description="a plain pydantic model's key")


class Root(SettingsModel):
    known_unused = frozenset({"statsd"})
    plain: Plain | None = Field(None, description="a section that is a plain pydantic model")
    outer: Outer = Field(default_factory=Outer, description="the outer section")
    own: Own = Field(default_factory=Own, description="corral's section")
    tags: dict[str, str] = Field(default_factory=dict, description="tag → pattern")


TEMPLATE = """# Page
prose
<!-- keys outer -->
stale table
<!-- end keys -->
more prose
<!-- keys rest -->
<!-- end keys -->
<!-- keys unused -->
<!-- end keys -->"""


def test_fill_places_each_section_and_puts_the_others_in_rest():
    found = [s for s in sections(Root) if s.name != "providers" and not s.name.startswith("provider ")]
    page = fill(TEMPLATE, found)
    assert "stale table" not in page and "prose\n<!-- keys outer -->\n| key |" in page
    assert "| `size` | integer | `1` | same key | yes | how many |" in page
    rest = page.split("<!-- keys rest -->")[1].split("<!-- end keys -->")[0]
    assert "### `:own:`" in rest and "`inner.depth`" in rest and "| corral only |" in rest
    assert "### `:tags:`" in rest and "| `NAME` | string |" in rest
    assert "### `:outer:`" not in rest
    assert "| `endpoint` | string | `/metrics` | same key | yes | a plain pydantic model's key |" in rest
    unused = page.split("<!-- keys unused -->")[1]
    assert "| the top level | `:statsd:` |" in unused
    assert "| `:outer:` | `old`, `nested.old_inner` |" in unused
    assert fill(page, found) == page, "filling a filled page changes nothing"


@pytest.mark.parametrize(("template", "problem"), [
    ("<!-- keys nowhere -->\n<!-- end keys -->", "no such section"),
    ("<!-- keys outer -->\nnever closed", "has no <!-- end keys -->"),
    ("<!-- keys outer -->\n<!-- end keys -->\n<!-- keys outer -->\n<!-- end keys -->", "appears twice"),
])
def test_fill_refuses_a_broken_template(template, problem):
    with pytest.raises(ValueError, match=problem):
        fill(template, [SectionDoc("outer", "`:outer:`", ())])


# -- the real model ----------------------------------------------------------------------------


def _models(cls: type[SettingsModel]) -> list[type[SettingsModel]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _models(sub)
    return found


def test_every_key_has_a_meaning():
    missing = [f"{s.name}: {row.key}" for s in sections() for row in s.rows if not row.meaning]
    assert missing == [], "give these fields a description="


def test_marked_keys_are_fields_of_their_model():
    for model in _models(SettingsModel):
        if model.__module__.startswith("corral."):
            marked = model.corral_keys | model.not_acted_on
            assert marked <= set(model.model_fields), (model.__name__, marked - set(model.model_fields))
            assert not model.known_unused & set(model.model_fields), model.__name__


def _keys(data: dict[str, Any], rows: dict[str, KeyRow], prefix: str = "") -> list[str]:
    """The dotted keys of ``data`` that name a row, going into mappings that do not."""
    found = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if path in rows:
            found.append(path)
        elif isinstance(value, dict):
            found += _keys(value, rows, f"{path}.")
    return found


def test_keys_vmpoolers_own_example_sets_are_not_called_corrals():
    data = normalise(read_yaml(REFERENCE.read_text(encoding="utf-8")))
    by_name = {s.name: {row.key: row for row in s.rows} for s in sections()}
    given = [("config", data["config"]), ("redis", data["redis"]), ("auth", data["auth"]),
             *(("pools", pool) for pool in data["pools"]),
             *(("provider vsphere", entry) for name, entry in data["providers"].items() if name != "dummy")]
    checked = [(name, key) for name, section in given for key in _keys(section, by_name[name])]
    assert len(checked) > 40
    assert [(name, key) for name, key in checked if by_name[name][key].corral] == []
    assert all(f"`:{key}:`" in {s.title for s in sections()} or key in Config.known_unused for key in data)
