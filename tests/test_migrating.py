"""docs/migrating.md: vmpooler's own configuration file is read as it is, without a word."""

from __future__ import annotations

import subprocess
import sys

from corral.config import load_config
from helpers import REFERENCE, REPO


def test_vmpoolers_example_file_loads_with_no_warning_at_all():
    config, warnings = load_config(REFERENCE)
    assert warnings == []
    assert {config.provider_class(name) for name in config.providers} == {"vsphere", "sim"}


def test_config_check_accepts_vmpoolers_example_file():
    done = subprocess.run([sys.executable, "-m", "corral.cli", "config", "check", str(REFERENCE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout and "warning" not in (done.stdout + done.stderr).lower()


def test_the_guide_names_tests_that_exist():
    text = (REPO / "docs" / "migrating.md").read_text(encoding="utf-8")
    named = [word.strip("`(),.") for word in text.split() if word.strip("`(),.").startswith("tests/")]
    assert len(named) >= 4
    for ref in named:
        path, _, test = ref.partition("::")
        assert (REPO / path).is_file(), ref
        assert not test or f"def {test}(" in (REPO / path).read_text(encoding="utf-8"), ref
