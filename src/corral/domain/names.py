"""What a pool name or alias may be: one rule for the configuration and the API alike; and
which domain a pool's VMs get (:func:`pool_domain`).

A name is 1 to 100 ASCII letters, digits, ``.``, ``_`` or ``-``: it appears in URL paths
(``/vm/<pool>``), in ``+``-joined requests (``/vm/a+b``) and in VM names, so spaces, ``+``,
``/`` and anything beyond ASCII are refused.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

POOL_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}\Z")
POOL_NAME_RULE = "must be 1 to 100 letters, digits, '.', '_' or '-'"
# A VM's hostname or FQDN as clients name it (DNS labels, matched in any case).
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z", re.I)
# What a token handed out by corral looks like (anything else is never looked up).
TOKEN_FORMAT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")


def pool_name_problem(name: object) -> str | None:
    """None when ``name`` may name a pool (or be an alias), else the rule it breaks."""
    if isinstance(name, str) and POOL_NAME_RE.match(name):
        return None
    return POOL_NAME_RULE


def default_dns_plugin(names: Collection[str]) -> str | None:
    """The entry a pool that names no ``dns_plugin`` uses: the only one there is, else none."""
    return next(iter(names)) if len(names) == 1 else None


def pool_domain(own: str | None, dns_plugin: str | None, dns_domains: Mapping[str, str | None],
                global_domain: str | None) -> str | None:
    """The domain of a pool's VMs; the first of these that gives one wins:

    1. the pool's own ``domain`` (``own``);
    2. the domain of the ``:dns_configs:`` entry its ``dns_plugin`` names, or, when it names
       none, of the only entry there is (``dns_domains``: entry name -> its domain);
    3. ``:config: domain`` (``global_domain``; vmpooler 2's key, which vmpooler 3 refuses);
    4. none: the VMs are known by their bare names.
    """
    if own:
        return own
    plugin = dns_plugin if dns_plugin is not None else default_dns_plugin(dns_domains)
    if plugin is not None and dns_domains.get(plugin):
        return dns_domains[plugin]
    return global_domain
