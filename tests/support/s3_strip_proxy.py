"""An S3 front that ignores conditional writes, as some S3-compatible servers do.

It takes requests on a loopback port, drops their `If-Match` / `If-None-Match` headers,
signs them again (SigV4, with the same test credentials) and passes them to the real server
behind it (SeaweedFS): every conditional write then "succeeds", which is what
`failover coordination selftest` must catch.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

DROPPED = {"if-match", "if-none-match"}
RESIGNED = {"authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}


class StrippingS3Proxy:
    def __init__(self, upstream: str, access_key: str, secret_key: str, region: str = "us-east-1"):
        from botocore.credentials import Credentials

        self.upstream = urlsplit(upstream)
        self.credentials = Credentials(access_key, secret_key)
        self.region = region
        self.stripped = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                proxy.forward(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {}
        for name, value in handler.headers.items():
            lower = name.lower()
            if lower in DROPPED:
                self.stripped += 1
                continue
            if lower in RESIGNED or lower in ("host", "content-length", "connection", "expect"):
                continue
            headers[name] = value
        url = f"{self.upstream.scheme}://{self.upstream.netloc}{handler.path}"
        request = AWSRequest(method=handler.command, url=url, data=body, headers=headers)
        S3SigV4Auth(self.credentials, "s3", self.region).add_auth(request)
        prepared = request.prepare()
        conn = http.client.HTTPConnection(
            self.upstream.hostname or "", self.upstream.port, timeout=10
        )
        try:
            conn.request(
                handler.command, handler.path, body=body or None, headers=dict(prepared.headers)
            )
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        handler.send_response(resp.status)
        for name, value in resp.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def __enter__(self) -> StrippingS3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
