"""A TCP proxy in front of vcsim that a test can cut: every open connection reset at once
(:meth:`Proxy.cut`), or every connection reset as it comes while the endpoint is "down"
(:meth:`Proxy.down` / :meth:`Proxy.up`). vcsim itself cannot drop a connection on demand."""

from __future__ import annotations

import socket
import struct
import threading


def _reset(sock: socket.socket) -> None:
    """Close abortively (SO_LINGER 0: a TCP reset), as a crashed peer or a firewall would; the
    shutdown first wakes the thread reading it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Proxy:
    """Listens on a free loopback port (``port``) and forwards to ``host``:``target_port``."""

    def __init__(self, host: str, target_port: int) -> None:
        self.target = (host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cuts = 0  # connections reset by cut() or while down
        self._down = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, name="vcsim-proxy", daemon=True).start()

    def cut(self) -> int:
        """Reset every open connection (both sides); how many client connections were open."""
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)
        self.cuts += len(doomed) // 2
        return len(doomed) // 2

    def down(self) -> None:
        """From now on, reset every connection (the open ones at once, new ones as they come)."""
        self._down = True
        self.cut()

    def up(self) -> None:
        self._down = False

    def close(self) -> None:
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._down:
                self.cuts += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            ended = source in self._open
            self._open -= {source, sink}
        if ended:  # the peer closed: close the other side too
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass
