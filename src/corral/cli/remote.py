"""Talking to a running corral: its URL, a token, HTTP Basic credentials, the answers and
what each means for the exit code.

The decisions (what a URL, a token or a checkout request may be, what an answer means) are
pure functions; ``Remote`` does the HTTP.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, NoReturn, TextIO
from urllib.parse import urlsplit, urlunsplit

import typer

from corral.domain.limits import MAX_VMS_PER_POOL
from corral.domain.names import HOSTNAME_RE, POOL_NAME_RE, TOKEN_FORMAT_RE

MAX_URL = 2000
MAX_USER = 200
MAX_PASSWORD = 4096
MAX_REASON = 300
API = "/api/v3"


class Exit(IntEnum):
    """The exit codes of the commands that talk to a running corral."""

    OK = 0
    REFUSED = 1  # corral answered no (404 no such pool or VM, 400, ...)
    USAGE = 2  # a bad command line (typer's own code for it) or an invalid configuration
    UNREACHABLE = 3  # no answer, or not one corral gives
    AUTH = 4  # 401 or 403: credentials or token refused
    LATER = 5  # 503 or 429: no VMs ready, too many logins; also checkout --wait out of time


EXIT_CODES_HELP = ("Exit codes: 0 done; 1 corral refused the request (for example no such pool or VM); "
                   "2 a bad command line or an invalid configuration; 3 corral cannot be reached; "
                   "4 the credentials or the token were refused; 5 try again later (no VMs ready, too many "
                   "logins, or checkout --wait ran out of time).")


class CliProblem(Exception):
    """Something the user must hear about, with the exit code it ends the command with."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: Exit) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(int(code))


# -- checks of what the user gives ------------------------------------------------------------------
def base_url(url: str) -> str:
    """The corral base URL (scheme and host, maybe a path prefix), without a trailing slash
    or ``/api/v3``."""
    if len(url) > MAX_URL:
        raise CliProblem(f"the URL is longer than {MAX_URL} characters", Exit.USAGE)
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliProblem(f"the URL must look like http://HOST:PORT, got {shown_url(url)!r}", Exit.USAGE)
    path = parts.path.rstrip("/").removesuffix(API)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def shown_url(url: str) -> str:
    """A URL as it may be printed: without a user or password in it."""
    parts = urlsplit(url[:MAX_URL])
    if parts.username is None and parts.password is None:
        return url[:MAX_URL]
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_token(token: str | None, what: str = "the token (--token or CORRAL_TOKEN)") -> str | None:
    """A token as given (--token, CORRAL_TOKEN); empty means none. The token itself is never
    repeated in the complaint."""
    if token is None or token == "":
        return None
    if not TOKEN_FORMAT_RE.match(token):
        raise CliProblem(f"{what} is not a corral token: a token is 1-64 letters, digits, '-' or '_'", Exit.USAGE)
    return token


def check_user(user: str | None) -> str:
    if not user:
        raise CliProblem("a user is needed: give --user or set CORRAL_USER", Exit.USAGE)
    if len(user) > MAX_USER or ":" in user or not user.isprintable():
        raise CliProblem(f"the user name must be at most {MAX_USER} printable characters without ':'", Exit.USAGE)
    return user


def check_host(name: str) -> str:
    if len(name) > 253 or not HOSTNAME_RE.match(name):
        raise CliProblem(f"{name[:60]!r} is not a hostname", Exit.USAGE)
    return name


def parse_wanted(args: Sequence[str]) -> dict[str, int]:
    """``POOL`` or ``POOL=N`` arguments as pool -> count; a pool named twice adds up."""
    if not args:
        raise CliProblem("name at least one pool", Exit.USAGE)
    wanted: dict[str, int] = {}
    for arg in args:
        name, sep, count = arg.partition("=")
        if not POOL_NAME_RE.match(name):
            raise CliProblem(f"{arg[:60]!r}: a pool name is 1-100 letters, digits, '.', '_' or '-'", Exit.USAGE)
        n = 1
        if sep:
            if not count.isdigit() or len(count) > 3 or not 1 <= int(count) <= MAX_VMS_PER_POOL:
                raise CliProblem(f"{arg[:60]!r}: the count after '=' must be a whole number from 1 to "
                                 f"{MAX_VMS_PER_POOL}", Exit.USAGE)
            n = int(count)
        wanted[name] = wanted.get(name, 0) + n
        if wanted[name] > MAX_VMS_PER_POOL:
            raise CliProblem(f"{name}: at most {MAX_VMS_PER_POOL} VMs per pool in one checkout", Exit.USAGE)
    return wanted


def read_password(stream: TextIO) -> str:
    """The first line of a stream (a pipe or a file), without its line end; bounded."""
    line = stream.readline(MAX_PASSWORD + 1)
    if len(line) > MAX_PASSWORD:
        raise CliProblem(f"the password is longer than {MAX_PASSWORD} characters", Exit.USAGE)
    password = line.rstrip("\r\n")
    if not password:
        raise CliProblem("the password is empty", Exit.USAGE)
    return password


def basic_header(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- what an answer means ---------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def reason_of(body: Any) -> str:
    """The server's reason in an error answer (``error``, ``reason`` or ``message``), made
    safe to print: one line, no control characters, bounded."""
    text = ""
    if isinstance(body, Mapping):
        for key in ("error", "reason", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                text = value
                break
            if isinstance(value, list) and value:
                text = "; ".join(str(v) for v in value)
                break
    text = _CONTROL.sub(" ", text).strip()
    return text[:MAX_REASON] + ("..." if len(text) > MAX_REASON else "")


def exit_for(status: int) -> Exit:
    """The exit code an HTTP status ends a command with."""
    if 200 <= status < 300:
        return Exit.OK
    if status in (401, 403):
        return Exit.AUTH
    if status in (429, 503):
        return Exit.LATER
    return Exit.REFUSED


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the decoded JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def problem(self, url: str, doing: str) -> CliProblem:
        """What a refusal means; a success that cannot be used (``ok`` but not the answer
        expected) is an answer corral does not give, never exit code 0."""
        reason = reason_of(self.body) or "no reason given"
        code = Exit.UNREACHABLE if self.ok else exit_for(self.status)
        return CliProblem(f"{doing}: corral at {shown_url(url)} answered {self.status}: {reason}", code)


@dataclass(frozen=True)
class Remote:
    """One running corral: its base URL, the token sent with each request (``X-AUTH-TOKEN``)
    and the seconds one request may take."""

    url: str
    token: str | None = None
    timeout: float = 30.0

    def call(self, method: str, path: str, *, body: Any = None, headers: Mapping[str, str] | None = None,
             params: Mapping[str, str] | None = None) -> Answer:
        """One request to ``/api/v3{path}``; an HTTP answer of any status is an ``Answer``, no
        answer (or one that is not JSON) is a ``CliProblem``."""
        import httpx

        sent = dict(headers or {})
        if self.token is not None:
            sent["X-AUTH-TOKEN"] = self.token
        try:
            resp = httpx.request(method, f"{self.url}{API}{path}", json=body, headers=sent, params=params,
                                 timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise CliProblem(f"cannot reach corral at {shown_url(self.url)}: {_why(exc)}", Exit.UNREACHABLE) from None
        try:
            decoded = resp.json()
        except ValueError:
            raise CliProblem(f"{shown_url(self.url)} answered {resp.status_code} with something other than JSON: "
                             "is it corral?", Exit.UNREACHABLE) from None
        if not isinstance(decoded, dict):  # every answer of corral's API is a JSON object
            raise CliProblem(f"{shown_url(self.url)} answered {resp.status_code} with JSON that is not an object: "
                             "is it corral?", Exit.UNREACHABLE)
        return Answer(resp.status_code, decoded)


def _why(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    text = _CONTROL.sub(" ", str(exc)).strip()
    return text[:MAX_REASON] or type(exc).__name__


# -- the options every command that talks to corral takes ------------------------------------------
Url = Annotated[str, typer.Option("--url", help="Base URL of a running corral (also CORRAL_URL).",
                                  envvar="CORRAL_URL", show_envvar=False)]
Token = Annotated[str | None, typer.Option("--token", help="A token, sent as the X-AUTH-TOKEN header (also "
                                                           "CORRAL_TOKEN). Needed when the server has auth.",
                                           envvar="CORRAL_TOKEN", show_envvar=False, show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer instead of a table.")]
DEFAULT_URL = "http://127.0.0.1:8080"
#: every command that reads a password takes it from standard input with the same flag
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", "--stdin", help="Read the password from the first "
                                             "line of standard input, also when it is a terminal.")]


def connect(url: str, token: str | None = None) -> Remote:
    """The corral at ``url`` with ``token``, both checked (a ``CliProblem`` if not)."""
    return Remote(base_url(url), check_token(token))


@contextmanager
def reported() -> Iterator[None]:
    """A ``CliProblem`` raised in the block is printed as ``error: ...`` and ends the command
    with its exit code. An answer whose parts have shapes corral never gives (a list where a
    mapping belongs, a string where a number does) fails while it is shown: that is said too,
    with exit code 3, not a traceback."""
    try:
        yield
    except CliProblem as exc:
        fail(str(exc), exc.code)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        fail(f"the answer is not one corral gives ({type(exc).__name__} while reading it): is it corral?",
             Exit.UNREACHABLE)
