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


class LoopbackWeb:
    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root, self.host, self.port = root, host, port
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> LoopbackWeb:
        ThreadingHTTPServer.allow_reuse_address = True
        handler = partial(_Quiet, directory=str(self.root))
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackWeb:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
