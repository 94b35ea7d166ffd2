"""The corral command against a server that answers what corral never gives (a JSON list, a
list where a mapping belongs, a success without a VM): each ends with a clear error and exit
code 3, never a traceback and never exit code 0."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from corral.cli import app

UNREACHABLE = 3


class Odd(BaseHTTPRequestHandler):
    """Answers every request with the status and JSON text the test set on the server."""

    def _answer(self) -> None:
        status, text = self.server.answer  # type: ignore[attr-defined]
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def odd() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


CASES = [
    # (command, status, body, what the error says)
    (["status"], 200, [1, 2], "not an object"),
    (["status"], 200, {"pools": [1]}, "not one corral gives"),
    (["status"], 200, {"pools": {"a": {"ready": 1}}, "hosts": {"sim": ["h1"]}}, "not one corral gives"),
    (["status"], 200, "just a string", "not an object"),
    (["checkout", "a"], 200, {"ok": True}, "answered 200"),
    (["checkout", "a"], 200, {"ok": True, "a": "not a record"}, "answered 200"),
    (["checkout", "a"], 200, [], "not an object"),
    (["vm", "abc"], 200, {"ok": True}, "without a VM record"),
    (["vm", "abc"], 200, {"ok": True, "abc": {"tags": [1, 2], "disk": 7}}, None),
    (["return", "abc"], 200, None, "not an object"),
]


@pytest.mark.parametrize(("args", "status", "body", "said"), CASES)
def test_an_answer_corral_does_not_give_is_an_error(odd: ThreadingHTTPServer, args: list[str], status: int,
                                                    body: Any, said: str | None) -> None:
    odd.answer = (status, json.dumps(body))  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{odd.server_address[1]}"
    out = CliRunner().invoke(app, [*args, "--url", url], env={"COLUMNS": "200"})
    if said is None:  # odd parts of a record are shown as they are, not refused
        assert out.exit_code == 0, out.output
        return
    assert out.exit_code == UNREACHABLE, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert "Traceback" not in out.output and said in out.output, out.output
