"""What a pool name or alias may be: one rule for the configuration and the API alike.

A name is 1 to 100 ASCII letters, digits, ``.``, ``_`` or ``-``: it appears in URL paths
(``/vm/<pool>``), in ``+``-joined requests (``/vm/a+b``) and in VM names, so spaces, ``+``,
``/`` and anything beyond ASCII are refused.
"""

from __future__ import annotations

import re

POOL_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}\Z")
POOL_NAME_RULE = "must be 1 to 100 letters, digits, '.', '_' or '-'"


def pool_name_problem(name: object) -> str | None:
    """None when ``name`` may name a pool (or be an alias), else the rule it breaks."""
    if isinstance(name, str) and POOL_NAME_RE.match(name):
        return None
    return POOL_NAME_RULE
