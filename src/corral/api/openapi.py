"""The OpenAPI description and the offline ``/api/docs`` page.

The routes read their JSON bodies and credentials themselves (``api/common.py``), so what
FastAPI generates from their signatures lacks the request bodies, the credentials and the
status codes they really answer, and lists a 422 that never happens (validation errors are
400s). :data:`OPERATIONS` says, for every operation, what FastAPI cannot see;
:func:`complete` folds it into the generated description, and :func:`install` makes the
app serve the result at ``/openapi.json`` and Swagger UI at ``/api/docs`` with its script
and style sheet from this package's dependencies, not from a CDN.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from corral.api.common import (
    INTEGER_RE,
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    MAX_VMS_PER_POOL,
    REQUEST_ID_RE,
    TAG_KEY_RE,
    TAG_VALUE_RE,
)
from corral.api.poolconfig import MAX_POOL_SIZE
from corral.domain.limits import MAX_LIFETIME_HOURS
from corral.domain.names import POOL_NAME_RE

DOCS_URL = "/api/docs"
ASSETS_URL = "/api/docs/static"
# Served by the routers under every prefix; described once, under the current one.
DESCRIBED_PREFIX = "/api/v3"

Security = Literal["none", "token", "token_optional", "basic"]

# -- JSON Schemas of request bodies ---------------------------------------------------------------
def json_pattern(regex: re.Pattern[str]) -> str:
    """The rule the server checks with ``regex`` as a JSON Schema pattern (``\\Z`` is ``$``)."""
    return regex.pattern.replace("\\Z", "$")


POOL_NAME = {"type": "string", "pattern": json_pattern(POOL_NAME_RE)}
DIGITS = {"type": "string", "pattern": json_pattern(INTEGER_RE)}


def whole_number(low: int, high: int) -> dict[str, Any]:
    """A whole number as a JSON number or a string of digits (vmpooler's clients send both)."""
    return {"anyOf": [{"type": "integer", "minimum": low, "maximum": high}, DIGITS]}


def pools_to(value: dict[str, Any], *, description: str) -> dict[str, Any]:
    """An object whose keys are pool names (or aliases) and whose values are ``value``."""
    return {"type": "object", "description": description, "minProperties": 1,
            "propertyNames": POOL_NAME, "additionalProperties": value}


VM_COUNT = whole_number(1, MAX_VMS_PER_POOL)
CHECKOUT_BODY = pools_to(VM_COUNT, description=f"Pool name or alias to number of VMs (1-{MAX_VMS_PER_POOL}).")
ONDEMAND_BODY = {
    **pools_to(VM_COUNT, description="Pool name or alias to number of VMs, and an optional request_id."),
    "properties": {"request_id": {"type": "string", "pattern": json_pattern(REQUEST_ID_RE),
                                  "description": "The request's id; a new UUID when left out."}},
}
CHANGE_VM_BODY = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "lifetime": {**whole_number(1, MAX_LIFETIME_HOURS),
                     "description": "Hours since checkout (needs a token with :auth:)."},
        "tags": {"type": "object", "propertyNames": {"type": "string", "pattern": json_pattern(TAG_KEY_RE)},
                 "additionalProperties": {"type": "string", "pattern": json_pattern(TAG_VALUE_RE)},
                 "description": "Tags to add; an empty value leaves that tag as it is."},
    },
}
POOL_SIZE_BODY = pools_to(whole_number(0, MAX_POOL_SIZE), description=f"Pool name to its new size (0-{MAX_POOL_SIZE}).")
POOL_TEMPLATE_BODY = pools_to({"type": "string", "minLength": 1, "maxLength": 255},
                              description="Pool name to its new template; not starting or ending with '/'.")
CLONE_TARGET_BODY = pools_to({"type": "string", "minLength": 1},
                             description="Pool name to its new clone target: a cluster the pool's provider knows.")
POOL_RESET_BODY = pools_to({}, description="The pools to reset, as keys; their values are not read "
                                           "(vmpooler's clients send \"1\").")

# -- responses ------------------------------------------------------------------------------------
ERROR = {
    "type": "object",
    "required": ["ok"],
    "properties": {
        "ok": {"const": False},
        "error": {"type": "string", "description": "What went wrong."},
        "message": {"type": "string"},
    },
    "description": "vmpooler's error body; vmpooler's own fields (message, bad_templates, not_configured, "
                   "bad_pools, failure) are kept where vmpooler sends them.",
}

SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The event's number (for Last-Event-ID)."},
        "event": {"type": "string", "description": "Its kind, such as vm.lifecycle, or resync."},
        "data": {"type": "string", "contentMediaType": "application/json", "description": "The event as JSON."},
    },
    "description": "One Server-Sent Event (OpenAPI 3.1: the schema of a text/event-stream is that of each event).",
}
SUCCESS_SCHEMAS: dict[str, dict[str, Any]] = {"application/json": {}, "text/event-stream": SSE_EVENT}

BAD_INPUT = (f"Bad input, named in `error`: a path value, a query value, or a body that is not a JSON "
             f"object, is larger than {MAX_BODY_BYTES} bytes, is nested deeper than {MAX_JSON_DEPTH} or "
             "has a value out of range.")
NO_TOKEN = "With :auth: configured: no X-AUTH-TOKEN where one is needed, or one that is not valid."
NOT_OWNER = "The VM (or request) was checked out with another user's token."
RATE_LIMITED = "With rate_limiting_enabled: the client's allowance for this kind of request is spent."
NOT_EXPERIMENTAL = "The route needs experimental_features: true in :config:."
NO_BASIC = "No or wrong HTTP Basic credentials."
NO_AUTH = "No :auth: is configured."
AUTH_DOWN = "The authentication service (LDAP) did not answer."


@dataclass(frozen=True)
class Operation:
    """What the generated description cannot know about one operation."""

    responses: dict[int, str]
    body: dict[str, Any] | None = None
    body_required: bool = True
    security: Security = "none"
    parameters: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    success_type: str = "application/json"


def reset_operation(done: str) -> Operation:
    """``DELETE /config/<setting>/<pool>``: back to the configured value (``done`` says which)."""
    return Operation({200: "Nothing to reset.", 201: done, 401: NO_TOKEN, 404: "An unknown pool.",
                      405: NOT_EXPERIMENTAL}, security="token")


# Keyed by (method, path template without the version prefix). A route served without an
# entry here fails tests/api/test_openapi.py; HEAD is described as the GET of its path.
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/vm"): Operation({200: "The pool names."}),
    ("POST", "/vm"): Operation(
        {200: "Every VM asked for, by pool: `hostname` is one name or a list.", 400: BAD_INPUT, 401: NO_TOKEN,
         404: "An unknown pool or alias.", 503: "Not enough ready VMs: nothing was checked out."},
        body=CHECKOUT_BODY, security="token_optional"),
    ("POST", "/vm/{pools}"): Operation(
        {200: "One VM per `+`-separated pool name or alias.", 400: BAD_INPUT, 401: NO_TOKEN,
         404: "An unknown pool or alias.", 503: "Not enough ready VMs: nothing was checked out."},
        security="token_optional"),
    ("GET", "/vm/{name}"): Operation({200: "The VM's record.", 400: BAD_INPUT, 404: "No VM of that name."}),
    ("PUT", "/vm/{name}"): Operation(
        {200: "Changed.", 400: BAD_INPUT + " `failure` lists every problem.", 401: NO_TOKEN, 403: NOT_OWNER,
         404: "No live VM of that name."},
        body=CHANGE_VM_BODY, body_required=False, security="token_optional"),
    ("DELETE", "/vm/{name}"): Operation(
        {200: "Returned; the VM is destroyed. For a VM whose destroy failed: the destroy is tried again now.",
         400: BAD_INPUT, 401: NO_TOKEN, 403: NOT_OWNER,
         404: "No checked-out VM of that name, nor one whose destroy failed."},
        security="token_optional"),
    ("POST", "/vm/{name}/disk/{size}"): Operation(
        {202: "The disk is being added; it shows in `disk` when done.", 400: BAD_INPUT + " Sizes are 1-2048 GB.",
         401: NO_TOKEN, 403: NOT_OWNER, 404: "No live VM of that name."},
        security="token"),
    ("POST", "/vm/{name}/snapshot"): Operation(
        {202: "The snapshot's name; it shows in `snapshots` when done.", 400: BAD_INPUT, 401: NO_TOKEN,
         403: NOT_OWNER, 404: "No live VM of that name."},
        security="token"),
    ("POST", "/vm/{name}/snapshot/{snapshot_name}"): Operation(
        {202: "The VM is being reverted.", 400: BAD_INPUT, 401: NO_TOKEN, 403: NOT_OWNER,
         404: "No live VM of that name, or it has no such snapshot."},
        security="token"),
    ("GET", "/token"): Operation(
        {200: "The caller's tokens, keyed by a hint (first and last four characters).", 401: NO_BASIC,
         404: NO_AUTH + " Or the caller has no tokens.", 503: AUTH_DOWN},
        security="basic"),
    ("POST", "/token"): Operation(
        {200: "A new token.", 401: NO_BASIC, 404: NO_AUTH, 503: AUTH_DOWN}, security="basic"),
    ("GET", "/token/{token}"): Operation(
        {200: "The token's user, times and running VMs.", 404: NO_AUTH + " Or no such token."}),
    ("DELETE", "/token/{token}"): Operation(
        {200: "Deleted.", 401: NO_BASIC, 403: "The token belongs to another user.",
         404: NO_AUTH + " Or no such token.", 503: AUTH_DOWN},
        security="basic"),
    ("POST", "/ondemandvm"): Operation(
        {201: "Accepted: the request's id.", 400: BAD_INPUT, 401: NO_TOKEN,
         403: "More VMs than max_ondemand_instances_per_request.", 404: "An unknown pool or alias.",
         409: "A request with this request_id exists.",
         503: "The runner's queue has no room for the request's VMs (see Retry-After)."},
        body=ONDEMAND_BODY, security="token"),
    ("POST", "/ondemandvm/{pools}"): Operation(
        {201: "Accepted: the request's id.", 400: BAD_INPUT, 401: NO_TOKEN,
         403: "More VMs than max_ondemand_instances_per_request.", 404: "An unknown pool or alias.",
         503: "The runner's queue has no room for the request's VMs (see Retry-After)."},
        security="token"),
    ("GET", "/ondemandvm/{request_id}"): Operation(
        {200: "Ready (with hostnames), failed or deleted (with a message).",
         202: "Being built: `ready` and `pending` counts per pool.", 404: "No such request."}),
    ("DELETE", "/ondemandvm/{request_id}"): Operation(
        {200: "Deleted; its VMs are destroyed.", 401: NO_TOKEN, 403: NOT_OWNER, 404: "No such request."},
        security="token"),
    ("GET", "/status"): Operation({200: "The live state, or the views asked for."}),
    ("GET", "/summary"): Operation({200: "Daily clone and boot times and tag counts.", 400: BAD_INPUT}),
    ("GET", "/summary/{section}"): Operation(
        {200: "One section of the summary.", 400: BAD_INPUT, 404: "Not boot, clone or tag."}),
    ("GET", "/summary/{section}/{key}"): Operation(
        {200: "One key of a section of the summary.", 400: BAD_INPUT, 404: "Not boot, clone or tag."}),
    ("GET", "/poolstat"): Operation({200: "ready, max and aliases of the pools asked for."}),
    ("GET", "/totalrunning"): Operation({200: "The number of checked-out VMs."}),
    ("GET", "/healthcheck"): Operation({200: "The server answers."}),
    ("GET", "/config"): Operation({200: "The pools as they run now."}),
    ("GET", "/full_config"): Operation({200: "The whole configuration, without secrets."}),
    ("POST", "/config/poolsize"): Operation(
        {200: "No size changed.", 201: "At least one size changed.", 400: BAD_INPUT + " Or an unknown pool.",
         401: NO_TOKEN, 405: NOT_EXPERIMENTAL},
        body=POOL_SIZE_BODY, security="token"),
    ("DELETE", "/config/poolsize/{pool}"): reset_operation("Reset to the configured size."),
    ("POST", "/config/pooltemplate"): Operation(
        {200: "No template changed.", 201: "At least one template changed; the pool's stock is replaced.",
         400: BAD_INPUT + " Or an unknown pool.", 401: NO_TOKEN, 405: NOT_EXPERIMENTAL},
        body=POOL_TEMPLATE_BODY, security="token"),
    ("DELETE", "/config/pooltemplate/{pool}"): reset_operation("Reset to the configured template."),
    ("POST", "/config/clonetarget"): Operation(
        {200: "No clone target changed.", 201: "At least one clone target changed.",
         400: BAD_INPUT + " Or an unknown pool, or a cluster the provider does not know (the known ones are named).",
         401: NO_TOKEN, 405: NOT_EXPERIMENTAL},
        body=CLONE_TARGET_BODY, security="token"),
    ("DELETE", "/config/clonetarget/{pool}"): reset_operation("Back to the configured clone target."),
    ("POST", "/config/reload"): Operation(
        {200: "The configuration file was read again and applied: what changed (`pools_added`, `pools_removed`, "
              "`pools_changed`, `providers_added`, `providers_changed`, `scheduling`, `auth`) and the keys that "
              "wait for a restart (`restart_needed`).", 401: NO_TOKEN,
         403: "The server has no `:auth:`: reload it with SIGHUP.",
         400: "The file is invalid: every problem is named in `problems`; nothing was changed."},
        body_required=False, security="token"),
    ("POST", "/poolreset"): Operation(
        {201: "The pools' ready and pending VMs are being replaced.", 400: BAD_INPUT + " Or an unknown pool.",
         401: NO_TOKEN, 405: NOT_EXPERIMENTAL},
        body=POOL_RESET_BODY, security="token"),
    ("GET", "/events"): Operation(
        {200: "Server-Sent Events, until the client or the server closes the stream.", 400: BAD_INPUT,
         503: "Too many event streams are open."},
        parameters=({"name": "Last-Event-ID", "in": "header", "required": False,
                     "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                     "description": "Resume after this event number."},),
        success_type="text/event-stream"),
}

SECURITY_SCHEMES = {
    "token": {"type": "apiKey", "in": "header", "name": "X-AUTH-TOKEN",
              "description": "A token from POST /token. Checked only when :auth: is configured; without "
                             ":auth: tokens are ignored."},
    "basic": {"type": "http", "scheme": "basic",
              "description": "The user's name and password, checked by the :auth: provider (static or LDAP)."},
}
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "token": [{"token": []}],
    "token_optional": [{}, {"token": []}],
    "basic": [{"basic": []}],
}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def template_of(path: str) -> str:
    """``/api/v3/vm/{name}`` -> ``/vm/{name}``: the key of a described path in :data:`OPERATIONS`."""
    return path[len(DESCRIBED_PREFIX):] if path.startswith(DESCRIBED_PREFIX + "/") else path


def lookup(method: str, template: str) -> Operation | None:
    """The entry for ``method`` on ``template``; HEAD is the GET without a body."""
    method = method.upper()
    return OPERATIONS.get(("GET" if method == "HEAD" else method, template))


def _response(code: int, text: str, op: Operation, method: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": text or str(code)}
    if method == "head":
        return answer
    if code < 400:
        answer["content"] = {op.success_type: {"schema": copy.deepcopy(SUCCESS_SCHEMAS[op.success_type])}}
    else:
        answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    if code == 401 and op.security != "none":
        answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"},
                                                  "description": "Basic realm=\"Authentication required\""}}
    return answer


def _complete_operation(path: str, method: str, generated: dict[str, Any], op: Operation) -> dict[str, Any]:
    out = dict(generated)
    in_path = set(re.findall(r"{([^}]+)}", path))
    params = [p for p in out.get("parameters", []) if p.get("in") != "path" or p.get("name") in in_path]
    params += [dict(p) for p in op.parameters]
    if params:
        out["parameters"] = params
    codes = dict(op.responses)
    codes[429] = RATE_LIMITED
    out["responses"] = {str(code): _response(code, text, op, method) for code, text in sorted(codes.items())}
    out["security"] = copy.deepcopy(SECURITY[op.security])
    if op.body is not None and method != "head":
        out["requestBody"] = {"required": op.body_required,
                              "content": {"application/json": {"schema": copy.deepcopy(op.body)}}}
    return out


def complete(generated: dict[str, Any]) -> dict[str, Any]:
    """A copy of FastAPI's description with :data:`OPERATIONS` folded in: request bodies, the
    status codes really answered (no 422), security schemes and each operation's security;
    and HEAD, answered on every GET route (as the GET, without a body)."""
    schema = copy.deepcopy(generated)
    for path, item in schema.get("paths", {}).items():
        template = template_of(path)
        if "get" in item and "head" not in item:
            item["head"] = copy.deepcopy(item["get"])
            item["head"]["summary"] = f"{item['get'].get('summary', 'GET')} (HEAD)"
            if "operationId" in item["get"]:
                item["head"]["operationId"] = item["get"]["operationId"] + "_head"
        for method in [m for m in item if m in HTTP_METHODS]:
            op = lookup(method, template)
            if op is None:
                item[method]["responses"].pop("422", None)
                continue
            item[method] = _complete_operation(path, method, item[method], op)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Error"] = copy.deepcopy(ERROR)
    components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    return schema


def completed_openapi(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's description (``generate``), completed once per change of it."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        generated = generate()
        if cache.get("from") is not generated:
            cache["schema"], cache["from"] = complete(generated), generated
        return cache["schema"]  # type: ignore[no-any-return]

    return openapi


def assets_dir() -> str:
    """Swagger UI's script, style sheet and icon, as shipped by the fastapi-offline package."""
    return str(files("fastapi_offline") / "static")


def install(app: FastAPI) -> None:
    """Serve the completed description at the app's ``openapi_url`` and Swagger UI at
    :data:`DOCS_URL`, its files from :data:`ASSETS_URL` (the app is made with ``docs_url=None``)."""
    app.openapi = completed_openapi(app.openapi)  # type: ignore[method-assign]
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=root + openapi_url, title=f"{app.title} - API",
                                   swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no online validator

    app.add_api_route(DOCS_URL, docs, methods=["GET"], include_in_schema=False)
