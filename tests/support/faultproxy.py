"""A TCP proxy on loopback in front of a real server's API, to put faults at exact moments
of a conversation (a network fault injector, like nftables in a namespace; the server
behind it stays real).

    proxy = FaultProxy(upstream_port).start()       # clients use proxy.port
    proxy.on_request(b"PATCH ", fault)               # once, when a request starts so

`fault(proxy, forward)` runs in the proxy's thread for the matching request: it may call
`forward()` (send the request upstream and return the response bytes), `reply(data)`,
`drop()` (reset the client's connection) and `refuse_for(seconds)` (reset every new
connection meanwhile; `returned_at` is the time.monotonic() it ends). Everything else is
relayed as it is.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any


def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class Exchange:
    """One matched request, for a fault function."""

    def __init__(
        self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket, request: bytes
    ) -> None:
        self.proxy, self.client, self.upstream, self.request = proxy, client, upstream, request
        self.dropped = False

    def _complete(self) -> None:
        """Read the rest of the request's body from the client (Content-Length)."""
        head, sep, body = self.request.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        self.client.settimeout(10)
        while sep and len(body) < length:
            chunk = self.client.recv(65536)
            if not chunk:
                break
            body += chunk
        self.request = head + sep + body

    def forward(self, settle: float = 0.3) -> bytes:
        """Send the request upstream; return its response (read until quiet for `settle`)."""
        self._complete()
        self.upstream.sendall(self.request)
        data = b""
        self.upstream.settimeout(10)
        data += self.upstream.recv(65536)
        self.upstream.settimeout(settle)
        with contextlib.suppress(TimeoutError, OSError):
            while chunk := self.upstream.recv(65536):
                data += chunk
        return data

    def reply(self, data: bytes) -> None:
        self.client.sendall(data)

    def drop(self) -> None:
        self.dropped = True
        _rst(self.client)


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._faults: list[tuple[bytes, Callable[[Exchange], Any]]] = []
        self._refuse_until = 0.0
        self.returned_at: float | None = None
        self.matched: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = False

    def start(self) -> FaultProxy:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def on_request(self, prefix: bytes, fault: Callable[[Exchange], Any]) -> None:
        """Once: the next request whose first bytes are `prefix` goes to `fault`."""
        with self._lock:
            self._faults.append((prefix, fault))

    def refuse_for(self, seconds: float) -> None:
        self._refuse_until = time.monotonic() + seconds
        self.returned_at = self._refuse_until

    @property
    def armed(self) -> bool:
        return bool(self._faults)

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                _rst(client)
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _take_fault(self, data: bytes) -> Callable[[Exchange], Any] | None:
        with self._lock:
            for i, (prefix, fault) in enumerate(self._faults):
                if data.startswith(prefix):
                    del self._faults[i]
                    self.matched.append(data[:80])
                    return fault
        return None

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _rst(client)
            return
        upstream.settimeout(None)
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 1.0)
                if self._stop:
                    return
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    fault = self._take_fault(data)
                    if fault is not None:
                        exchange = Exchange(self, client, upstream, data)
                        fault(exchange)
                        if exchange.dropped:
                            return
                        continue
                    upstream.sendall(data)
                if upstream in ready:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    client.sendall(data)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                upstream.close()
            with contextlib.suppress(OSError):
                client.close()
