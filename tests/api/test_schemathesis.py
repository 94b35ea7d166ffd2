"""Property test of the whole API from its own description: schemathesis reads the running
server's /openapi.json and sends every operation (HEAD included) valid and invalid paths,
queries, headers and bodies, with and without a valid token or valid Basic credentials.
No answer may be a 5xx (but a 503 where the operation declares one: not enough ready VMs, a
full queue); every status code, content type, header and body must be as declared.

Random names would almost never hit a pool or a VM, so part of the generated cases use real
ones (pools, aliases, checked-out VMs, an on-demand request): checkouts, returns, changes,
disks, snapshots and pool changes really happen while the rest is fuzzed.

Bounded for a 2-core machine (about a minute): a fixed number of examples per
operation, a fixed seed, deterministic generation, no shrinking.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.conftest import basic, tok

POOLS = [{"name": "deb", "alias": ["linux"], "template": "t/deb", "size": 8, "clone_target": "c1"},
         {"name": "win", "template": "t/win", "size": 3}]
CONFIG = {"experimental_features": True, "max_ondemand_instances_per_request": 3}
CLUSTERS = {"hosts": [{"name": "h1", "cluster": "c1"}, {"name": "h2", "cluster": "c2"}]}
EXAMPLES_PER_OPERATION = 50
SEED = 20240601
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]

# Values that name something real, for a share of the generated cases.
POOL_NAMES = ["deb", "win", "linux"]
PATH_POOLS = ["deb", "win", "linux", "deb+win", "linux+linux", "deb+nosuchpool"]
BODY_VALUES = {  # by the path of each operation that reads a body: a real value for each pool key
    "/api/v3/vm": st.one_of(st.integers(1, 3), st.sampled_from(["1", "2"])),
    "/api/v3/ondemandvm": st.integers(1, 4),
    "/api/v3/config/poolsize": st.integers(0, 8),
    "/api/v3/config/pooltemplate": st.sampled_from(["t/deb", "t/deb-2", "t/win"]),
    "/api/v3/config/clonetarget": st.sampled_from(["c1", "c2", "nosuchcluster"]),
    "/api/v3/poolreset": st.just("1"),
    "/api/v3/vm/{name}": None,  # lifetime and tags: what the description generates is real enough
}


def settings() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION, "deterministic": True,
                       "no-shrink": True, "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
                   "stateful": {"enabled": False}},
        # 503 is an answer, not a crash, where the operation declares it (not enough ready VMs, the
        # runner's queue or the login queue full); status_code_conformance holds it to those
        "checks": {"not_a_server_error": {"expected-statuses": ["1XX", "2XX", "3XX", "4XX", 503]}},
        "request-timeout": 10,
        # the event stream never ends by itself: each one is read for half a second (a slow start
        # is tried again), so fewer of them
        "operations": [{"include-path-regex": "/events$", "request-timeout": 0.5, "request-retries": 2,
                        "max-stream-events": 1, "generation": {"max-examples": 30}}],
    })


def credentials(token: str) -> type:
    """An auth provider for schemathesis: every other case gets a valid token (or valid Basic
    credentials where the operation takes those); the others keep what was generated."""
    turns = itertools.count()

    class Credentials:
        def get(self, case: schemathesis.Case, context: Any) -> str | None:
            if next(turns) % 2:
                return None
            security = case.operation.definition.raw.get("security", [])
            return "basic" if {"basic": []} in security else "token"

        def set(self, case: schemathesis.Case, data: str, context: Any) -> None:
            if data == "basic":
                case.headers["Authorization"] = basic("alice")["Authorization"]
            else:
                case.headers["X-AUTH-TOKEN"] = token

    return Credentials


def real_values(api: Any, path_values: dict[str, list[str]]) -> None:
    """Hooks that make half of the generated paths and bodies name real things."""

    @api.hook
    def before_generate_path_parameters(context: Any, strategy: st.SearchStrategy) -> st.SearchStrategy:
        def with_real(params: Any) -> st.SearchStrategy:
            if not isinstance(params, dict):
                return st.just(params)
            return st.fixed_dictionaries({k: st.sampled_from(path_values[k]) if k in path_values else st.just(v)
                                          for k, v in params.items()})

        return st.one_of(strategy, strategy.flatmap(with_real))

    @api.hook
    def before_generate_body(context: Any, strategy: st.SearchStrategy) -> st.SearchStrategy:
        values = BODY_VALUES[context.operation.path]  # a new body without an entry fails here
        if values is None:
            return strategy
        real = st.dictionaries(st.sampled_from(POOL_NAMES), values, min_size=1, max_size=2)
        if context.operation.path == "/api/v3/ondemandvm":
            real = st.tuples(real, st.sampled_from(["", "req-a", "req-b"])).map(
                lambda pair: {**pair[0], "request_id": pair[1]} if pair[1] else pair[0])
        return st.one_of(strategy, real)


@pytest.fixture
def corral_api(make_server):
    server = make_server(POOLS, auth="static", sim=CLUSTERS, **CONFIG)
    alice = server.token("alice")
    spare = [server.token("alice") for _ in range(2)] + [server.token("bob")]
    vms = [server.client.post("/vm/deb", headers=tok(alice)).json()["deb"]["hostname"] for _ in range(3)]
    vms += [server.client.post("/vm/win").json()["win"]["hostname"], server.ready("deb")[0]]
    request = server.client.post("/ondemandvm/deb", headers=tok(alice)).json()["request_id"]
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=settings())
    api.auth(refresh_interval=None)(credentials(alice))
    real_values(api, {"name": vms + ["nosuchvm"], "pools": PATH_POOLS, "pool": POOL_NAMES, "size": ["1", "40"],
                      "request_id": [request, "req-a", "req-b"], "token": spare,
                      "section": ["boot", "clone", "tag"]})
    return api


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schemas read ``node._nodeid``, which pytest 9 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("corral_api")


# 50 examples of every operation (and the coverage phase's cases) take about a minute, more on a busy
# machine: room above the default 120 s limit
@pytest.mark.timeout(300)
@schema.parametrize()
def test_no_server_errors_and_only_declared_answers(case):
    case.call_and_validate(checks=CHECKS)
