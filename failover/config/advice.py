"""Advice on a valid config: what makes it useless at 3 a.m. Pure: the config and a way to
ask whether a file exists come in, (key path, message) pairs go out; `validate` prints
them with file and line, `check` and the agent log them once per change of the config.

- no notification target (for the whole config, or for a site whose `notify` replaces the
  global list with nothing): an outage or a failover reaches nobody;
- `auto_failover` without `dns`: the standby would be made ready but users never sent to it;
- a cold standby without a backup set: there is nothing to restore onto it;
- SSH key or known_hosts files that do not exist;
- documentation addresses and names (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
  2001:db8::/32, example.com/.net/.org) left from the sample.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from failover.config.models import Config, Site

Loc = tuple[str | int, ...]
Advice = tuple[Loc, str]

DOC_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
DOC_DOMAINS = ("example.com", "example.net", "example.org", "example")


def is_documentation_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == n.version and ip in n for n in DOC_NETWORKS)


def is_documentation_name(name: str) -> bool:
    name = name.lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in DOC_DOMAINS)


def advise(config: Config, exists: Callable[[Path], bool]) -> list[Advice]:
    """Everything worth a warning in a valid config, in the order of the file."""
    out: list[Advice] = []
    if not config.notify and all(_site_targets(s) == 0 for s in config.sites.values()):
        out.append(
            (
                ("notify",),
                "no notification target: an outage, a failover or a failing backup reaches "
                "nobody (add notify: [{url: ...}])",
            )
        )
    for name, site in config.sites.items():
        out += _site_advice(config, name, site, exists)
    for name, template in config.compute_templates.items():
        key = getattr(getattr(template, "ssh", None), "key", None)
        if key is not None and not exists(Path(key).expanduser()):
            out.append(
                (("compute_templates", name, "ssh", "key"), f"SSH key file {key} does not exist")
            )
    return out


def _site_targets(site: Site) -> int:
    routing = getattr(site, "notify", None)
    return 0 if routing is None else len(routing.targets)


def _site_advice(
    config: Config, name: str, site: Site, exists: Callable[[Path], bool]
) -> Iterator[Advice]:
    loc: Loc = ("sites", name)
    routing = getattr(site, "notify", None)
    if config.notify and routing is not None and routing.replace and not routing.targets:
        yield (
            (*loc, "notify"),
            "notify.replace with no targets: this site's outages reach nobody",
        )
    if site.policy.auto_failover and site.dns is None:
        yield (
            (*loc, "policy", "auto_failover"),
            "auto_failover is on but the site has no `dns`: a failover would make the "
            "standby ready and never send users to it",
        )
    if site.failover.standby == "cold" and site.backup is None and len(site.endpoints) > 1:
        yield (
            (*loc, "failover", "standby"),
            "a cold standby and no `backup` set: there is nothing to restore onto the standby "
            "(add a backup set, or say standby: warm if it is kept current otherwise)",
        )
    yield from _endpoint_advice(loc, site, exists)
    if is_documentation_name(site.hostname):
        yield (
            (*loc, "hostname"),
            f"{site.hostname} is a documentation name left from the sample: put your site's name",
        )
    if site.dns is not None:
        if is_documentation_name(site.dns.zone):
            yield ((*loc, "dns", "zone"), f"{site.dns.zone} is a documentation name")
        for i, record in enumerate(site.dns.records):
            if is_documentation_name(record.name):
                yield (
                    (*loc, "dns", "records", i, "name"),
                    f"{record.name} is a documentation name",
                )


def _endpoint_advice(loc: Loc, site: Site, exists: Callable[[Path], bool]) -> Iterator[Advice]:
    for ep_name, endpoint in site.endpoints.items():
        here: Loc = (*loc, "endpoints", ep_name)
        if is_documentation_address(endpoint.address):
            yield (
                (*here, "address"),
                f"{endpoint.address} is a documentation address left from the sample: "
                "probes of it can never pass",
            )
        ssh: Any = endpoint.ssh
        if ssh is None:
            continue
        if ssh.key is not None and not exists(ssh.key.expanduser()):
            yield ((*here, "ssh", "key"), f"SSH key file {ssh.key} does not exist")
        if ssh.known_hosts is not None and not exists(ssh.known_hosts.expanduser()):
            yield (
                (*here, "ssh", "known_hosts"),
                f"known_hosts file {ssh.known_hosts} does not exist: ssh cannot check the "
                "server's host key",
            )
