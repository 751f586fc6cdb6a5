"""wait_for_ssh: a new server counts as reachable once its port answers with an SSH banner.
Only 127.0.0.1 is contacted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from failover.errors import Unreachable
from failover.runs import compute
from tests.support import free_port


class BannerServer:
    """Accepts connections on 127.0.0.1 and sends `banner` (after `delay` seconds of
    refusing connections)."""

    def __init__(self, banner: bytes, delay: float = 0.0) -> None:
        self.port = free_port()
        self.banner = banner
        self.delay = delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        time.sleep(self.delay)  # nothing listens yet: connection refused
        with socket.socket() as srv:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind(("127.0.0.1", self.port))
            srv.listen()
            srv.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(self.banner)

    def __enter__(self) -> BannerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@pytest.fixture
def closed_port() -> Iterator[int]:
    yield free_port()


def test_waits_until_the_banner_comes() -> None:
    said: list[str] = []
    with BannerServer(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", delay=0.8) as server:
        banner = compute.wait_ssh_banner(
            "127.0.0.1", server.port, 10, interval=0.2, progress=said.append
        )
    assert banner == "SSH-2.0-OpenSSH_9.2p1 Debian-2"
    assert said[0] == f"waiting up to 10s for SSH on 127.0.0.1:{server.port}"
    assert said[-1].startswith(f"SSH answers on 127.0.0.1:{server.port}")


def test_a_port_that_never_answers_is_unreachable(closed_port: int) -> None:
    start = time.monotonic()
    with pytest.raises(Unreachable) as err:
        compute.wait_ssh_banner("127.0.0.1", closed_port, 1.0, interval=0.2)
    assert time.monotonic() - start < 3
    message = str(err.value)
    assert f"127.0.0.1:{closed_port} did not answer SSH within 1s" in message
    assert "Connection refused" in message
    assert "ssh_timeout" in message  # the hint


def test_something_else_on_the_port_is_not_ssh() -> None:
    with (
        BannerServer(b"HTTP/1.1 400 Bad Request\r\n\r\n") as server,
        pytest.raises(Unreachable, match="not an SSH server"),
    ):
        compute.wait_ssh_banner("127.0.0.1", server.port, 1.0, interval=0.2)
