"""A real etcd v3 cluster (Debian's etcd-server 3.4) of three members on loopback.

    with EtcdCluster(tmp_path) as cluster:
        cluster.endpoints            # ["http://127.0.0.1:P1", ...] (client URLs)
        cluster.stop_member(1)       # a member goes away (SIGTERM; data kept)
        cluster.start_member(1)      # and comes back
        cluster.kill_majority()      # two of three down: writes and linearizable reads stall

Each member listens for clients and peers on free loopback ports (and for clients on any
extra `client_hosts`, e.g. a namespace-reachable address of the test's own); data lives in
the given directory. Members are stopped by their own PID. etcd phones nowhere; nothing
listens beyond the given addresses.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tests.support import free_port, require_binary, stop_process, wait_for


class EtcdCluster:
    def __init__(self, directory: Path, size: int = 3, client_hosts: Sequence[str] = ()) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.client_hosts = list(client_hosts)
        self.client_ports = [free_port() for _ in range(size)]
        self.peer_ports = [free_port() for _ in range(size)]
        self.names = [f"m{i + 1}" for i in range(size)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size
        self.token = f"fot-{self.dir.name[-12:]}"
        self._started = [False] * size

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.client_ports]

    def endpoints_on(self, host: str) -> list[str]:
        return [f"http://{host}:{p}" for p in self.client_ports]

    def _argv(self, i: int) -> list[str]:
        etcd = require_binary("etcd")
        cluster = ",".join(
            f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports, strict=True)
        )
        client_urls = [f"http://127.0.0.1:{self.client_ports[i]}"] + [
            f"http://{h}:{self.client_ports[i]}" for h in self.client_hosts
        ]
        return [
            etcd,
            f"--name={self.names[i]}",
            f"--data-dir={self.dir / self.names[i]}",
            f"--listen-client-urls={','.join(client_urls)}",
            f"--advertise-client-urls={client_urls[0]}",
            f"--listen-peer-urls=http://127.0.0.1:{self.peer_ports[i]}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{self.peer_ports[i]}",
            f"--initial-cluster={cluster}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={self.token}",
            "--heartbeat-interval=100",
            "--election-timeout=1000",
            "--logger=zap",
            f"--log-outputs={self.dir / (self.names[i] + '.log')}",
            "--enable-pprof=false",
            "--auto-compaction-retention=1",
        ]

    def start_member(self, i: int) -> None:
        if self.procs[i] is not None and self.procs[i].poll() is None:  # type: ignore[union-attr]
            return
        self.procs[i] = subprocess.Popen(
            self._argv(i),
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / f"{self.names[i]}.stderr", "ab"),  # noqa: SIM115
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._started[i] = True

    def stop_member(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            stop_process(proc, grace=5)
            self.procs[i] = None

    def kill_majority(self) -> None:
        """Leave one member of three: the cluster has no quorum."""
        for i in range(1, self.size):
            self.stop_member(i)

    def start(self) -> EtcdCluster:
        for i in range(self.size):
            self.start_member(i)
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every running member answers a linearizable read (the cluster has a leader)."""

        def ready() -> bool:
            for i, proc in enumerate(self.procs):
                if proc is None:
                    continue
                if proc.poll() is not None:
                    tail = (self.dir / f"{self.names[i]}.log").read_text(errors="replace")
                    raise RuntimeError(f"etcd {self.names[i]} exited:\n{tail[-2000:]}")
                self.call(i, "/v3/kv/range", {"key": _b64("fot-health")})
            return True

        wait_for(ready, timeout, "the etcd cluster to have a leader", interval=0.2)

    def call(
        self, i: int, path: str, body: dict[str, object], timeout: float = 2
    ) -> dict[str, object]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.client_ports[i]}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            data: dict[str, object] = json.loads(resp.read() or b"{}")
        return data

    def stop(self) -> None:
        for i in range(self.size):
            self.stop_member(i)

    def __enter__(self) -> EtcdCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
