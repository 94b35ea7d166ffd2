"""The dashboard: one page at ``/dashboard`` (and ``/dashboard/``; ``/`` sends browsers there,
as vmpooler does), with its script, style sheet and icon served from this package under
``/dashboard/static``: no build step, nothing from a CDN, works offline.

The page reads ``GET /api/v3/status`` and follows ``GET /api/v3/events``; both are open
without a token, so the page needs none. It runs no polling loop: it reads the status again
when events arrive (at most every 250 ms), after an ``event: resync`` and after the stream
reconnects. Its Content-Security-Policy allows scripts, styles and connections to this
server only; the script builds every element with the DOM (never ``innerHTML``), so names and
event text are shown as text.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from corral.api.events import KINDS

PAGE_URL = "/dashboard"
ASSETS_URL = "/dashboard/static"
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"  # what is served as it is
TEMPLATE = HERE / "page.html"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=4)
def page(root_path: str) -> str:
    """The page for a server mounted at ``root_path`` ("" at the top): the template with the
    paths it links to and the event kinds the script listens for."""
    template = TEMPLATE.read_text(encoding="utf-8")
    return (template.replace("{{root}}", html.escape(root_path.rstrip("/"), quote=True))
            .replace("{{kinds}}", html.escape(",".join(KINDS), quote=True)))


def install(app: FastAPI) -> None:
    """Serve the page at :data:`PAGE_URL`, its files under :data:`ASSETS_URL`, and send ``/`` there."""
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC), name="dashboard-assets")

    async def dashboard(request: Request) -> HTMLResponse:
        return HTMLResponse(page(request.scope.get("root_path", "")), headers=PAGE_HEADERS)

    async def root(request: Request) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "").rstrip("/") + PAGE_URL + "/", status_code=302)

    for path in (PAGE_URL, PAGE_URL + "/"):
        app.add_api_route(path, dashboard, methods=["GET"], include_in_schema=False)
    app.add_api_route("/", root, methods=["GET"], include_in_schema=False)
