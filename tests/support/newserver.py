"""A "new server" for migrate tests: a lab host at the address a cloud API will hand out.

moto's EC2 gives the first server created in a fresh subnet the address network+4. These
helpers pick a subnet of 10.213.0.0/16 (the namespaces' range, behind the `unreachable`
guard route) whose network+4 is free, and put a namespace host exactly there, before the
server is "created", so that everything after provisioning (SSH, restic, restore, checks,
DNS) runs against a real host:

- `FixedNetnsHost`: a NetnsHost whose address is given. The namespace side holds the
  address as a /32, the root side a /32 of the same /30 (so that NetnsHost's allocator
  sees that /30 as used), with a /32 route each way over the veth pair. Named `fot-...`
  with an owner file like every NetnsHost: netns.cleanup_leftovers() removes it after a
  crash.
- `NewServer`: a LabHost (sshd, web server, own /srv, the S3 forwarder) on such an address.
  `hide_restic()` makes restic and the package managers unusable inside it and gives it an
  empty /usr/local/bin, for the "upload the local restic" path.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
from pathlib import Path

from tests.support.lab import LabHost
from tests.support.netns import (
    PREFIX,
    STATE_DIR,
    SUBNET,
    NetnsError,
    NetnsHost,
    _add_guard,
    _delete_namespace,
    _locked,
    _proc_start_time,
    _run,
    _used_subnets,
)

# The package managers ensure_restic looks for: hidden so that none runs on this machine.
PACKAGE_MANAGERS = ("apt-get", "dnf", "yum", "apk", "zypper", "pacman")


class FixedNetnsHost(NetnsHost):
    """A network namespace reachable from the root namespace at exactly `ip`."""

    def __init__(self, ip: str, name: str | None = None) -> None:
        super().__init__(name)
        address = ipaddress.IPv4Address(ip)
        if address not in SUBNET:
            raise ValueError(f"{ip} is outside {SUBNET}, the namespaces' guarded range")
        quad = ipaddress.IPv4Network(f"{ip}/30", strict=False)
        self.ip = ip
        self.host_ip = str(next(a for a in quad if a != address))

    def create(self) -> FixedNetnsHost:
        if os.geteuid() != 0:
            raise NetnsError("network namespaces need root")
        quad = ipaddress.IPv4Network(f"{self.ip}/30", strict=False)
        with _locked():
            _add_guard()
            if quad in _used_subnets():
                raise NetnsError(f"{quad} is in use by another namespace")
            self.subnet = quad
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
                _run(["ip", "addr", "add", f"{self.host_ip}/32", "dev", self.host_if])
                _run(["ip", "link", "set", self.host_if, "up"])
                _run(
                    [
                        "ip",
                        "route",
                        "add",
                        f"{self.ip}/32",
                        "dev",
                        self.host_if,
                        "src",
                        self.host_ip,
                    ]
                )
                self._ip_in("link", "set", "lo", "up")
                self._ip_in("addr", "add", f"{self.ip}/32", "dev", self.ns_if)
                self._ip_in("link", "set", self.ns_if, "up")
                self._ip_in("route", "add", f"{self.host_ip}/32", "dev", self.ns_if, "src", self.ip)
            except Exception:
                _delete_namespace(self.name)
                self._up = False
                raise
        return self

    def link_up(self) -> None:
        super().link_up()
        # The routes over the veth went with the link: put them back.
        _run(
            ["ip", "route", "replace", f"{self.ip}/32", "dev", self.host_if, "src", self.host_ip],
            check=False,
        )
        self._ip_in("route", "replace", f"{self.host_ip}/32", "dev", self.ns_if, "src", self.ip)


def pick_subnet() -> tuple[str, str]:
    """A /24 of 10.213.0.0/16 whose network+4 lies in a /30 no namespace uses now:
    (subnet CIDR for the cloud, the address its first server gets)."""
    used = _used_subnets()
    thirds = list(range(1, 255))
    random.shuffle(thirds)
    for third in thirds:
        net = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        ip = net.network_address + 4
        if ipaddress.IPv4Network(f"{ip}/30") not in used:
            return str(net), str(ip)
    raise NetnsError("no free /24 in 10.213.0.0/16")


class NewServer(LabHost):
    """A LabHost at a fixed address (see the module's docstring)."""

    def __init__(self, name: str, lab_dir: Path, ip: str, *, short: str | None = None) -> None:
        super().__init__(name, lab_dir, short=short)
        self.net = FixedNetnsHost(ip, short)

    def hide_restic(self) -> None:
        """Inside this host only: /usr/local/bin is an empty tmpfs, and restic and the
        package managers are /dev/null (not executable), so `restic version` fails and no
        package manager can run; an uploaded restic goes to /usr/local/bin."""
        self.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/usr/local/bin"])
        for name in ("restic", *PACKAGE_MANAGERS):
            for directory in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
                path = Path(directory) / name
                if path.exists() and not path.is_symlink() and not Path(directory).is_symlink():
                    self.run(["mount", "--bind", "/dev/null", str(path)])

    def has_file(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0


__all__ = ["PREFIX", "FixedNetnsHost", "NewServer", "pick_subnet"]
