"""A small thread-safe keep-alive pool over `http.client`.

One TCP connection per request would cost a handshake each time and leave TIME_WAIT sockets
behind a busy submitter. The pool keeps up to `size` idle connections, hands them out LIFO
(the most recently used is the least likely to have been closed by the server's idle
timeout) and checks each one before reuse: a socket that is readable while idle has been
closed by the server (or holds bytes nobody asked for), so it is dropped instead of being
written to. That check removes almost every stale-connection failure, which matters because
a failed non-idempotent request cannot be resent blindly.
"""
from __future__ import annotations

import http.client
import select
import ssl
import threading


class ConnectionPool:
    """Idle connections to one origin. Concurrent users beyond `size` get their own
    connection; only `size` of them are kept when they come back."""

    def __init__(self, scheme: str, host: str, port: int, size: int, timeout: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self._scheme = scheme
        self._host = host
        self._port = port
        self._size = size
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.opened = 0

    def acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection and whether it was reused (a reused one may still turn out dead)."""
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if _still_open(conn):
                    return conn, True
                conn.close()
            self.opened += 1
        return self._new(), False

    def release(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        """Gives a connection back; one that cannot carry another request is closed."""
        if reusable:
            with self._lock:
                if len(self._idle) < self._size:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _new(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                               context=self._ssl_context)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)


def _still_open(conn: http.client.HTTPConnection) -> bool:
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
