"""A tiny HTTP server on loopback in a thread, stoppable and restartable on one port."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class BackgroundServer:
    """An http.server serving from a thread on loopback; subclasses say what handles the
    requests (`handler()`). Context manager; stop() then start() keeps the port."""

    host = "127.0.0.1"
    port = 0
    _server: ThreadingHTTPServer | None = None

    def handler(self) -> Any:
        raise NotImplementedError

    def start(self) -> Any:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer((self.host, self.port), self.handler())
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LoopbackWeb(BackgroundServer):
    """Static files from `root`: a site (or a canary) to probe."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root, self.host, self.port = root, host, port

    def handler(self) -> Any:
        return partial(_Quiet, directory=str(self.root))


_HOP_HEADERS = ("content-length", "transfer-encoding", "connection", "server", "date")


def relay(handler: Any, host: str, port: int, body: bytes) -> None:
    """Pass the request a BaseHTTPRequestHandler is serving on to host:port and its answer
    back (the test proxies in front of moto that refuse or throttle some calls).
    http.client, not urllib: urllib would add a form Content-Type, and moto tells the
    protocol by it."""
    import http.client

    headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(handler.command, handler.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        status, data, response_headers = resp.status, resp.read(), resp.headers
    finally:
        conn.close()
    handler.send_response(status)
    for key, value in response_headers.items():
        if key.lower() not in _HOP_HEADERS:
            handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
