"""Network namespaces that stand in for VPSes, with real outages. Needs root.

    with NetnsHost() as vps:
        proc = vps.popen([...server argv...])      # runs inside, PID is the server's own
        ... probe vps.ip ...
        vps.blackhole()    # input dropped (clients time out)
        vps.reset(443)     # TCP reset for one port (fast failure)
        vps.link_down()    # the namespace's link goes down
        vps.heal()         # all of the above undone

Everything is named `fot-...`: namespaces, veths (<= 15 characters), so that
`cleanup_leftovers()` can remove what a crashed run left behind. Each host gets a /30 out of
10.213.0.0/16 with no default route inside. Before any link exists, the root namespace gets
`unreachable 10.213.0.0/16 metric 4000`, so that traffic for a downed host never leaves the
machine through its real interface; it is removed when the last `fot-` namespace goes.

Several processes may use this at once (an owner file per namespace records the creating
process; cleanup only touches namespaces whose owner is gone).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support import stop_process

PREFIX = "fot-"
SUBNET = ipaddress.IPv4Network("10.213.0.0/16")
GUARD_METRIC = 4000
STATE_DIR = Path("/run/fot-netns")
LOCK_FILE = STATE_DIR / "lock"


class NetnsError(RuntimeError):
    pass


def _run(
    argv: Sequence[str], *, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, input=input, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(LOCK_FILE, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(name: str) -> bool:
    try:
        owner = json.loads((STATE_DIR / f"{name}.owner").read_text())
    except (OSError, ValueError):
        return False
    return _proc_start_time(int(owner["pid"])) == owner.get("start")


def _namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _fot_links() -> list[str]:
    out = _run(["ip", "-j", "link", "show"], check=False).stdout or "[]"
    return [link["ifname"] for link in json.loads(out) if link["ifname"].startswith(PREFIX)]


def _guard_present() -> bool:
    out = _run(["ip", "route", "show", "type", "unreachable", str(SUBNET)], check=False).stdout
    return bool(out.strip())


def _add_guard() -> None:
    _run(["ip", "route", "replace", "unreachable", str(SUBNET), "metric", str(GUARD_METRIC)])


def _remove_guard_if_unused() -> None:
    """Remove the guard route when no `fot-` namespace remains (call under the lock)."""
    if any(ns.startswith(PREFIX) for ns in _namespaces()):
        return
    if _guard_present():
        _run(
            ["ip", "route", "del", "unreachable", str(SUBNET), "metric", str(GUARD_METRIC)],
            check=False,
        )


def _kill_namespace_pids(name: str, grace: float = 3.0) -> None:
    pids = [int(p) for p in _run(["ip", "netns", "pids", name], check=False).stdout.split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _proc_start_time(p) is not None and not _zombie(p)]
        if pids:
            time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _delete_namespace(name: str) -> None:
    _kill_namespace_pids(name)
    _run(["ip", "netns", "del", name], check=False)
    for link in (f"{name}h",):
        if link in _fot_links():
            _run(["ip", "link", "del", link], check=False)
    with contextlib.suppress(OSError):
        (STATE_DIR / f"{name}.owner").unlink()


def cleanup_leftovers() -> list[str]:
    """Remove every `fot-` namespace and veth whose owning process is gone (a crashed run),
    and the guard route when nothing uses it. Returns what was removed."""
    removed: list[str] = []
    if os.geteuid() != 0:
        return removed
    with _locked():
        live: set[str] = set()
        for ns in _namespaces():
            if not ns.startswith(PREFIX):
                continue
            if _owner_alive(ns):
                live.add(ns)
                continue
            _delete_namespace(ns)
            removed.append(ns)
        for link in _fot_links():
            if link[:-1] not in live:  # host side of a veth: <namespace>h
                _run(["ip", "link", "del", link], check=False)
                removed.append(link)
        if STATE_DIR.exists():
            for owner in STATE_DIR.glob(f"{PREFIX}*.owner"):
                if owner.name.removesuffix(".owner") not in live:
                    with contextlib.suppress(OSError):
                        owner.unlink()
        _remove_guard_if_unused()
    return removed


def _used_subnets() -> set[ipaddress.IPv4Network]:
    out = _run(["ip", "-j", "-4", "addr", "show"], check=False).stdout or "[]"
    used = set()
    for link in json.loads(out):
        for addr in link.get("addr_info", []):
            net = ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False)
            if isinstance(net, ipaddress.IPv4Network) and net.subnet_of(SUBNET):
                used.add(net.supernet(new_prefix=30) if net.prefixlen > 30 else net)
    return used


class NetnsHost:
    """A network namespace reachable from the root namespace at `.ip`."""

    def __init__(self, name: str | None = None) -> None:
        short = name or uuid.uuid4().hex[:8]
        if len(short) > 9:
            raise ValueError("namespace suffix must be at most 9 characters (veth names <= 15)")
        self.name = f"{PREFIX}{short}"
        self.host_if = f"{self.name}h"  # root namespace side
        self.ns_if = f"{self.name}n"  # inside the namespace
        self.subnet: ipaddress.IPv4Network | None = None
        self.procs: list[subprocess.Popen[Any]] = []
        self._up = False

    # -- life cycle --

    def create(self) -> NetnsHost:
        if os.geteuid() != 0:
            raise NetnsError("network namespaces need root")
        with _locked():
            _add_guard()  # before any link exists, so none can ever leak when it goes down
            used = _used_subnets()
            candidates = list(SUBNET.subnets(new_prefix=30))
            random.shuffle(candidates)
            subnet = next(c for c in candidates if c not in used)
            self.subnet = subnet
            hosts = list(subnet.hosts())
            self.host_ip, self.ip = str(hosts[0]), str(hosts[1])
            _run(["ip", "netns", "add", self.name])
            self._up = True
            (STATE_DIR / f"{self.name}.owner").write_text(
                json.dumps({"pid": os.getpid(), "start": _proc_start_time(os.getpid())})
            )
            try:
                _run(
                    [
                        "ip",
                        "link",
                        "add",
                        self.host_if,
                        "type",
                        "veth",
                        "peer",
                        "name",
                        self.ns_if,
                        "netns",
                        self.name,
                    ]
                )
                _run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
                _run(["ip", "link", "set", self.host_if, "up"])
                self._ip_in("link", "set", "lo", "up")
                self._ip_in("addr", "add", f"{self.ip}/30", "dev", self.ns_if)
                self._ip_in("link", "set", self.ns_if, "up")
            except Exception:
                _delete_namespace(self.name)
                self._up = False
                raise
        return self

    def destroy(self) -> None:
        if not self._up:
            return
        for proc in self.procs:
            stop_process(proc, grace=3.0)
        with _locked():
            _delete_namespace(self.name)
            self._up = False
            _remove_guard_if_unused()

    def __enter__(self) -> NetnsHost:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- running things inside --

    def _ip_in(self, *args: str) -> None:
        _run(["ip", "-n", self.name, *args])

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        # `ip netns exec` execs the program itself: the Popen PID is the program's PID.
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(self.exec_argv(argv), **kw)
        self.procs.append(proc)
        return proc

    def run(
        self, argv: Sequence[str], *, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return _run(self.exec_argv(argv), check=check, input=input)

    # -- outages --

    def _nft(self, script: str) -> None:
        self.run(["nft", "-f", "-"], input=script)

    def blackhole(self) -> None:
        """Drop every packet coming in (except on lo): clients time out."""
        self._nft(
            "add table inet outage\n"
            "add chain inet outage input { type filter hook input priority 0; policy drop; }\n"
            "add rule inet outage input iif lo accept\n"
        )

    def reset(self, port: int) -> None:
        """Answer TCP connections to `port` with a reset: clients fail at once."""
        self._nft(
            "add table inet outage\n"
            "add chain inet outage portreset { type filter hook input priority -10; policy accept; }\n"
            f"add rule inet outage portreset tcp dport {int(port)} reject with tcp reset\n"
        )

    def link_down(self) -> None:
        self._ip_in("link", "set", self.ns_if, "down")

    def link_up(self) -> None:
        self._ip_in("link", "set", self.ns_if, "up")
        # The link is usable once the host side has carrier again.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = _run(["ip", "-j", "link", "show", self.host_if], check=False).stdout or "[]"
            links = json.loads(out)
            if links and "LOWER_UP" in links[0].get("flags", []):
                return
            time.sleep(0.02)

    def heal(self) -> None:
        """Undo every outage: delete the outage table, bring the link up."""
        self.run(["nft", "delete", "table", "inet", "outage"], check=False)
        self.link_up()

    def __repr__(self) -> str:
        return f"NetnsHost({self.name}, ip={getattr(self, 'ip', None)})"
