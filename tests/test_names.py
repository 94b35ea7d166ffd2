"""The one rule for pool names and aliases, shared by the configuration and the API."""

from __future__ import annotations

import pytest

from corral.domain.names import POOL_NAME_RE, pool_name_problem


@pytest.mark.parametrize("name", ["debian-12-x86_64", "a", "A.b_c-9", "x" * 100])
def test_good_names(name: str):
    assert pool_name_problem(name) is None and POOL_NAME_RE.match(name)


@pytest.mark.parametrize("name", ["", "debian 12", "a+b", "x/../y", "snake-\U0001F40D", "x" * 101, "a\n", "é", 5, None])
def test_bad_names_are_refused_with_the_rule(name: object):
    problem = pool_name_problem(name)
    assert problem is not None and "letters, digits" in problem and "100" in problem
