"""The Prometheus exposition, at ``:prometheus: prometheus_endpoint`` (default /prometheus) and
at /metrics; no token is needed, as in vmpooler."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from corral.metrics.prometheus import CONTENT_TYPE
from corral.runtime import Service


def install(app: FastAPI, service: Service) -> None:
    async def exposition() -> Response:
        return Response(await service.metrics.scrape(), media_type=CONTENT_TYPE)

    for path in service.metrics.endpoints:
        app.add_api_route(path, exposition, methods=["GET"], include_in_schema=False)
