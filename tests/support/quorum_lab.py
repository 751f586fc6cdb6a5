"""Three watchers in three places: the lab (tests/support/lab.py: primary and standby VPSes,
a canary, restic on SeaweedFS's S3) plus one network namespace per watcher, each running
its own `failover agent` with its own state, and one coordination engine: the lab's
SeaweedFS S3 (a bucket with conditional writes) or a 3-member etcd cluster.

    with QuorumLab(engine="s3") as q:
        q.start_agents()
        q.partition("c")            # nftables in c's namespace: c cannot reach the primary
        q.lab.primary.blackhole()   # the primary is down for everyone
        q.agents["a"].kill()        # SIGKILL / .stop() (SIGSTOP) / .cont()

How the namespaces reach each other and the services: each watcher's namespace (and each
lab host's) routes the lab's subnet through the root namespace, which forwards between the
namespaces' links only (per-link `forwarding`; the machine's ip_forward stays off). The
root-namespace services the watchers need (PowerDNS with its API, the notification
receiver, the etcd members) listen on loopback and on one root-namespace address of a link
of our own (`services` below), reachable from every namespace; S3 is reached, as in the lab
hosts, through a forwarder inside each watcher's namespace to SeaweedFS's Unix socket.

A watcher with `can_act: false` (the `voter`) runs in a private mount namespace in which
the lab's secrets and SSH key directories are empty, and without the DNS key in its
environment: it holds no credentials to move the site, as on a real voter-only machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support import require_binary, stop_process, wait_for
from tests.support.cli import REPO
from tests.support.dns_servers import PowerDnsServer
from tests.support.lab import SITE, ZONE, Lab
from tests.support.netns import SUBNET, NetnsHost, _run
from tests.support.receiver import NotificationReceiver

COORD_BUCKET = "coordination"


class ReachablePowerDns(PowerDnsServer):
    """The lab's PowerDNS, also answering (DNS and API) on an address the namespaces reach."""

    def __init__(self, address: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.address = address

    def _prepare(self) -> None:
        super()._prepare()
        conf = self.dir / "pdns.conf"
        text = conf.read_text()
        text = text.replace("local-address=127.0.0.1", f"local-address=127.0.0.1,{self.address}")
        text = text.replace("webserver-address=127.0.0.1", f"webserver-address={self.address}")
        text = text.replace(
            "webserver-allow-from=127.0.0.0/8", f"webserver-allow-from=127.0.0.0/8,{SUBNET}"
        )
        # every API request is logged: the provider's own change log for the tests
        text = text.replace("loglevel=4", "loglevel=6\nwebserver-loglevel=normal")
        conf.write_text(text)

    @property
    def nameserver(self) -> str:
        return f"{self.address}:{self.dns_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.address}:{self.api_port}/api/v1/servers/localhost"

    def provider_config(self, key_ref: str = "${PDNS_API_KEY}") -> dict[str, Any]:
        config = super().provider_config(key_ref)
        config["args"]["host"] = self.address
        return config

    def changes(self) -> list[str]:
        """The zone changes PowerDNS received (PATCH requests in its log)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [
            line for line in text.splitlines() if '"PATCH /api/v1/servers/localhost/zones/' in line
        ]


class Agent:
    """One watcher's `failover agent`, in its own namespace."""

    def __init__(
        self,
        name: str,
        net: NetnsHost,
        config: Path,
        env: dict[str, str],
        log: Path,
        hide: Sequence[Path],
    ) -> None:
        self.name, self.net, self.config, self.env, self.log, self.hide = (
            name,
            net,
            config,
            env,
            log,
            hide,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self, *args: str) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "failover",
            "--config",
            str(self.config),
            "--watcher",
            self.name,
            *args,
        ]
        if not self.hide:
            return self.net.exec_argv(command)
        mounts = " && ".join(f"mount -t tmpfs -o size=1m fot-hidden {_q(p)}" for p in self.hide)
        script = f"{mounts} && exec {' '.join(_q(c) for c in command)}"
        unshare = require_binary("unshare")
        return self.net.exec_argv(
            [unshare, "--mount", "--propagation", "private", "sh", "-c", script]
        )

    def start(self) -> None:
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv("agent"),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
            )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, env=env, cwd=REPO, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{self.name}: failover {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            stop_process(self.proc, grace=20)
        self.proc = None

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


class QuorumLab:
    def __init__(
        self, engine: str = "s3", watchers: Sequence[str] = ("a", "b", "c"), voter: str | None = "c"
    ) -> None:
        self.engine = engine
        self.watchers = list(watchers)
        self.voter = voter
        self.lab = Lab(dns=False)
        self.services = NetnsHost(f"{self.lab.id}v")
        self.nets = {w: NetnsHost(f"{self.lab.id}w{i}") for i, w in enumerate(self.watchers)}
        self.pdns: ReachablePowerDns | None = None
        self.etcd: Any = None
        self.agents: dict[str, Agent] = {}
        self.scenario = "main"
        self._stack = contextlib.ExitStack()

    # -- life cycle --

    def start(self) -> QuorumLab:
        require_binary("nft")
        if self.engine == "etcd":
            require_binary("etcd")
        self.lab.start()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        lab = self.lab
        self.services.create()
        svc = self.services.host_ip
        for net in self.nets.values():
            net.create()
        # namespaces route the lab's subnet through the root namespace, which forwards
        # between these links only
        for net in [*self.nets.values(), lab.primary.net, lab.standby.net, lab.canary]:
            net.run(["ip", "route", "add", str(SUBNET), "via", net.host_ip])
            _run(["sysctl", "-q", "-w", f"net.ipv4.conf.{net.host_if}.forwarding=1"])
        self.pdns = ReachablePowerDns(
            svc, zone=ZONE, records={(f"shop.{ZONE}", "A"): ([lab.primary.ip], 60)}
        )
        self._stack.callback(self.pdns.cleanup)
        self.pdns.start()
        lab.pdns = self.pdns  # the lab's config and env() now include DNS
        receiver = NotificationReceiver(host=svc)
        self._stack.enter_context(receiver)
        lab.receiver = receiver
        assert lab.s3 is not None
        lab.s3.create_bucket(COORD_BUCKET)
        for name, net in self.nets.items():
            forwarder = net.popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.forward",
                    "--listen",
                    f"127.0.0.1:{lab.s3.s3_port}",
                    "--unix",
                    str(lab.s3.s3_socket),
                ],
                cwd=str(REPO),
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdin=subprocess.DEVNULL,
            )
            assert forwarder.poll() is None, name
        if self.engine == "etcd":
            from tests.support.etcd_cluster import EtcdCluster

            self.etcd = EtcdCluster(lab.dir / "etcd", client_hosts=[svc])
            self._stack.callback(self.etcd.stop)
            self.etcd.start()
        for name, net in self.nets.items():
            wait_for(
                lambda net=net: (
                    net.run(
                        [
                            sys.executable,
                            "-c",
                            f"import socket; socket.create_connection(('127.0.0.1', {lab.s3.s3_port}), 1).close(); socket.create_connection(('{svc}', {self.pdns.api_port}), 1).close(); socket.create_connection(('{lab.primary.ip}', 22), 1).close()",
                        ],
                        check=False,
                    ).returncode
                    == 0
                ),
                15,
                f"{name}'s paths to S3, PowerDNS and the primary",
            )

    def stop(self) -> None:
        for agent in self.agents.values():
            with contextlib.suppress(Exception):
                agent.stop()
        errors: list[BaseException] = []
        for action in (
            self._stack.close,
            *[n.destroy for n in self.nets.values()],
            self.services.destroy,
            self.lab.stop,
        ):
            try:
                action()
            except BaseException as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> QuorumLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the watchers --

    def coordination(self, **overrides: Any) -> dict[str, Any]:
        watchers = {
            w: (
                {"can_act": False, "description": "voter only"}
                if w == self.voter
                else {"description": f"watcher {w}"}
            )
            for w in self.watchers
        }
        section: dict[str, Any] = {
            "engine": self.engine,
            "watchers": watchers,
            "lease_ttl": "4s",
            "lease_margin": "1s",
            "selftest_writers": 4,
        }
        if self.engine == "s3":
            assert self.lab.s3 is not None
            section["s3"] = {
                "bucket": COORD_BUCKET,
                "prefix": f"group-{self.lab.id}-{self.scenario}/",
                "endpoint_url": f"http://127.0.0.1:{self.lab.s3.s3_port}",
                "access_key_id": "${FOT_COORD_KEY}",
                "secret_access_key": "${FOT_COORD_SECRET}",
                "timeout": "2s",
            }
        else:
            section["etcd"] = {
                "endpoints": self.etcd.endpoints_on(self.services.host_ip),
                "prefix": f"group-{self.lab.id}-{self.scenario}/",
                "timeout": "1s",
            }
        section.update(overrides)
        return section

    def write_configs(self, **overrides: Any) -> dict[str, Path]:
        """One config per watcher: the same, but for its own state file (its machine's)."""
        out = {}
        coordination = overrides.pop("coordination", {})
        for w in self.watchers:
            d = self.dir(w)
            d.mkdir(parents=True, exist_ok=True)
            out[w] = self.lab.write_config(
                d / "failover.yaml",
                state=str(d / "state.db"),
                coordination=self.coordination(**coordination),
                **overrides,
            )
        return out

    def env(self, watcher: str) -> dict[str, str]:
        assert self.lab.s3 is not None
        env = self.lab.env()
        env["FOT_COORD_KEY"] = self.lab.s3_access_key
        env["FOT_COORD_SECRET"] = self.lab.s3.secret_key
        if watcher == self.voter:
            env.pop("PDNS_API_KEY", None)
            env.pop("FOT_LAB_S3_ACCESS_KEY", None)
        return env

    def make_agents(self, **overrides: Any) -> dict[str, Agent]:
        configs = self.write_configs(**overrides)
        for w in self.watchers:
            hide = [self.lab.secrets_dir, self.lab.key.parent] if w == self.voter else []
            self.agents[w] = Agent(
                w, self.nets[w], configs[w], self.env(w), self.dir(w) / "agent.log", hide
            )
        return self.agents

    def start_agents(self, **overrides: Any) -> dict[str, Agent]:
        agents = self.make_agents(**overrides)
        for agent in agents.values():
            agent.start()
        return agents

    def dir(self, watcher: str) -> Path:
        return self.lab.dir / "watchers" / self.scenario / watcher

    def state(self, watcher: str) -> Path:
        return self.dir(watcher) / "state.db"

    def new_scenario(self, name: str) -> None:
        """A clean start on the same lab: agents stopped, outages healed, DNS back on the
        primary, fresh state for every watcher and a fresh prefix in the engine."""
        from tests.support.lab import HOSTNAME

        for agent in self.agents.values():
            agent.stop()
        self.agents = {}
        for w in self.watchers:
            self.heal_partition(w)
        self.lab.primary.heal()
        self.lab.standby.heal()
        self.lab.primary.start_web(self.lab.cert)
        self.lab.standby.start_web(self.lab.cert)
        assert self.pdns is not None
        self.pdns.set_records(HOSTNAME, "A", [self.lab.primary.ip])
        if self.etcd is not None:
            for i in range(self.etcd.size):
                self.etcd.start_member(i)
            self.etcd.wait_healthy()
        assert self.lab.s3 is not None
        if self.lab.s3.proc is None:
            self.lab.s3.start()
        self.scenario = name
        self._changes_base = len(self._watcher_changes())
        self._titles_base = len(self.lab.receiver.messages)

    def titles(self) -> list[str]:
        """The notifications' titles since the scenario began."""
        return self.lab.receiver.titles()[getattr(self, "_titles_base", 0) :]

    def _watcher_changes(self) -> list[str]:
        assert self.pdns is not None
        ours = f" {self.services.host_ip}:"  # the test's own resets come from there
        return [line for line in self.pdns.changes() if ours not in line]

    def zone_changes(self) -> list[str]:
        """The zone changes PowerDNS received from the watchers since the scenario began
        (its own log, which names the address each came from)."""
        return self._watcher_changes()[getattr(self, "_changes_base", 0) :]

    def db(self, watcher: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
        import sqlite3

        path = self.state(watcher)
        if not path.exists():
            return []
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(query, args).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def status(self, watcher: str) -> dict[str, Any]:
        """`failover status --json` on the watcher's machine (its namespaces)."""
        import json

        proc = self.agents[watcher].cli("status", "--json")
        data: dict[str, Any] = json.loads(proc.stdout)["sites"][SITE]
        return data

    def group_view(self, watcher: str) -> dict[str, Any]:
        """The group as `watcher` last saw it (its status's `group` section)."""
        return dict(self.status(watcher).get("group") or {})

    def partition(self, watcher: str, address: str | None = None) -> None:
        """nftables in the watcher's namespace: nothing from it reaches `address` (the primary)."""
        target = address or self.lab.primary.ip
        self.nets[watcher].run(
            ["nft", "-f", "-"],
            input=(
                "add table inet partition\n"
                "add chain inet partition out { type filter hook output priority 0; policy accept; }\n"
                f"add rule inet partition out ip daddr {target} drop\n"
            ),
        )

    def heal_partition(self, watcher: str) -> None:
        self.nets[watcher].run(["nft", "delete", "table", "inet", "partition"], check=False)

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        try:
            wait_for(predicate, timeout, what, interval=0.25)
        except TimeoutError:
            logs = "\n".join(f"--- {w} ---\n{a.tail()}" for w, a in self.agents.items())
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}\nnotifications: {self.lab.receiver.titles()}\n{logs}"
            ) from None

    def leader(self) -> str | None:
        """The watcher whose own view says it is the leader, from its state."""
        import json

        for w in self.watchers:
            rows = self.db(w, "SELECT value FROM meta WHERE key='coordination:view'")
            if rows:
                view = json.loads(rows[0][0])
                holder = (view.get("leader") or {}).get("holder")
                if holder == w and view.get("lease_remaining") and time.time() - view["ts"] < 3:
                    return w
        return None

    def all_up(self) -> bool:
        for w in self.watchers:
            rows = self.db(w, "SELECT endpoint, state FROM health WHERE site=?", SITE)
            import json

            if len(rows) < 2 or any(json.loads(r[1])["status"] != "up" for r in rows):
                return False
        return True

    def runs(self, watcher: str) -> list[tuple[Any, ...]]:
        return self.db(watcher, "SELECT id, kind, status, attempts, options FROM runs ORDER BY id")

    def dns_switches(self, watcher: str) -> list[tuple[Any, ...]]:
        return self.db(watcher, "SELECT id FROM dns_switches")


def _q(value: Any) -> str:
    import shlex

    return shlex.quote(str(value))


def running_quorum_lab(engine: str) -> Iterator[QuorumLab]:
    from tests.support import require_root

    require_root()
    for binary in ("unshare", "nsenter", "nft", "sshd", "ssh", "restic", "pdns_server"):
        require_binary(binary)
    with QuorumLab(engine) as q:
        yield q
