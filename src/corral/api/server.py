"""The uvicorn server corral runs its API on."""

from __future__ import annotations

from typing import Any

import uvicorn


class Server(uvicorn.Server):
    """uvicorn's server, ending the open event streams first when it stops.

    uvicorn waits for every response in progress before it shuts down; an event stream
    never finishes on its own, so without this a ``corral serve`` with a client attached
    would not stop.
    """

    async def shutdown(self, sockets: Any = None) -> None:
        app = self.config.app
        streams = getattr(getattr(app, "state", None), "streams", None)
        if streams is not None:
            streams.close_all()
        await super().shutdown(sockets)
