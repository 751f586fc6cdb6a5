"""A local HTTP receiver for apprise's json:// notifications (loopback only)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class NotificationReceiver:
    """Collects the JSON bodies POSTed to it. `url` is the apprise URL to configure."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.messages: list[dict[str, Any]] = []
        self.requests: list[str] = []  # every request as it came, for a failure's message
        self.fail = False  # answer 500 to test that a failing notifier breaks nothing
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(
                    f"{time.strftime('%H:%M:%S')} POST {self.path} {len(body)}/{length} bytes"
                )
                if receiver.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    receiver.messages.append(json.loads(body))
                except ValueError:
                    receiver.messages.append({"raw": body.decode(errors="replace")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://{host}:{self.port}/notify"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> NotificationReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def titles(self) -> list[str]:
        return [str(m.get("title", "")) for m in self.messages]

    def wait_for(self, fragment: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if fragment in str(m.get("title", "")) or fragment in str(m.get("message", "")):
                    return m
            time.sleep(0.05)
        raise AssertionError(
            f"no notification with {fragment!r}; got {self.titles()}; requests: {self.requests}"
        )
