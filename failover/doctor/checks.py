"""`failover doctor`'s checks: each asks the real thing (restic, the repository, sshd, the
DNS provider, the authoritative servers, the canaries, the state, the endpoints' clocks,
apprise) what a failover will ask of it, with a short timeout, and says what it found in
one line with a hint. Independent checks run concurrently; the order of the output is
fixed (the order of this list)."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.doctor.report import Finding, clock_finding
from failover.errors import FailoverError

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.config.models import Endpoint, Site

Job = Callable[[], list[Finding]]
SSH_CONNECT = 5.0  # seconds for ssh to connect, per endpoint


def diagnose(loaded: LoadedConfig, *, timeout: float = 5.0, workers: int = 8) -> list[Finding]:
    """Every check, in a fixed order."""
    config = loaded.config
    jobs: list[tuple[str, str, Job]] = [("state", "local", partial(_state, loaded))]
    for name, site in config.sites.items():
        if site.backup is not None:
            jobs.append(("restic", name, partial(_restic, loaded, name)))
    for name, site in config.sites.items():
        for ep_name, endpoint in site.endpoints.items():
            if endpoint.ssh is not None:
                jobs.append(
                    ("ssh", f"{name}/{ep_name}", partial(_ssh, name, site, ep_name, endpoint))
                )
    for name, site in config.sites.items():
        if site.dns is not None:
            jobs.append(("dns", name, partial(_dns, loaded, name, timeout)))
    jobs.append(("canary", "canaries", partial(_canaries, loaded)))
    jobs.append(("clock", "local", partial(_clock, loaded, timeout)))
    jobs.append(("notify", "targets", partial(_notify, loaded)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doctor") as pool:
        results = list(pool.map(lambda job: _guarded(*job), jobs))
    return [finding for found in results for finding in found]


def _guarded(check: str, target: str, job: Job) -> list[Finding]:
    try:
        return job()
    except FailoverError as exc:
        return [Finding(check, target, False, str(exc).splitlines()[0])]
    except Exception as exc:  # a check that breaks is a failed check, never a traceback
        return [Finding(check, target, False, f"could not check: {exc.__class__.__name__}")]


# --- the state -------------------------------------------------------------------------------


def _state(loaded: LoadedConfig) -> list[Finding]:
    from failover.store import Store, lock_holder

    path = loaded.state_path
    if not path.exists():
        parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("/"))
        if os.access(parent, os.W_OK | os.X_OK):
            return [Finding("state", str(path), True, "not created yet; its directory is writable")]
        return [
            Finding(
                "state",
                str(path),
                False,
                f"does not exist and {parent} is not writable",
                "set `state:` in the config to a writable path",
            )
        ]
    if not stat.S_ISREG(path.stat().st_mode):
        return [Finding("state", str(path), False, "not a regular file", "set `state:` to a file")]
    try:
        with Store.open(path) as store:
            store.probe_write()
    except FailoverError as exc:
        return [Finding("state", str(path), False, str(exc), "check the file's owner and space")]
    holder = lock_holder(path)
    detail = "writable" + (f"; the lock is held by pid {holder} (the agent?)" if holder else "")
    return [Finding("state", str(path), True, detail)]


# --- restic and the repository ---------------------------------------------------------------


def _restic(loaded: LoadedConfig, site: str) -> list[Finding]:
    from failover.backup.run import restic_for

    bset = loaded.config.sites[site].backup
    assert bset is not None
    where = "local" if bset.source == "local" else f"{site}/{bset.source}"
    restic = restic_for(loaded, site)
    try:
        version = restic.version()
    except FailoverError as exc:
        return [Finding("restic", where, False, str(exc), getattr(exc, "hint", None))]
    out = [Finding("restic", where, True, f"restic {version} ({bset.restic})")]
    try:
        restic.run(["cat", "config"], timeout=min(120.0, bset.timeout))
    except FailoverError as exc:
        out.append(
            Finding("repository", site, False, str(exc).splitlines()[0], getattr(exc, "hint", None))
        )
    else:
        out.append(
            Finding("repository", site, True, f"opened from {where}: reachable, password right")
        )
    return out


# --- SSH ----------------------------------------------------------------------------------------


def _ssh(name: str, site: Site, ep_name: str, endpoint: Endpoint) -> list[Finding]:
    from providers.remote import Remote

    ssh = endpoint.ssh
    assert ssh is not None
    target = f"{name}/{ep_name}"
    out: list[Finding] = []
    if ssh.key is not None:
        out.append(_key_file(target, ssh.key.expanduser()))
    host = ssh.host or endpoint.address
    if ssh.known_hosts is not None:
        out.append(_host_key(target, host, ssh.port, ssh.known_hosts.expanduser()))
    remote = Remote(ssh, endpoint.address, name=ep_name, connect_timeout=SSH_CONNECT)
    try:
        remote.run(["true"], timeout=SSH_CONNECT * 3)
    except FailoverError as exc:
        out.append(Finding("ssh", target, False, str(exc).split(" (hint:")[0], exc.hint))
        return out
    out.append(Finding("ssh", target, True, f"{remote.user}@{host}:{ssh.port} answers"))
    if _needs_sudo(site, ssh.user):
        done = remote.run(["sudo", "-n", "true"], check=False, timeout=SSH_CONNECT * 3)
        if done.returncode == 0:
            out.append(Finding("sudo", target, True, f"{ssh.user} may sudo without a password"))
        else:
            out.append(
                Finding(
                    "sudo",
                    target,
                    False,
                    f"`sudo -n true` as {ssh.user} fails: {done.text.strip()[:120] or done.returncode}",
                    "allow the restore's commands in sudoers (NOPASSWD), or use ssh.user root",
                )
            )
    return out


def _needs_sudo(site: Site, user: str) -> bool:
    commands = [*site.failover.after_restore, *site.failover.fence]
    return user != "root" or any(c.lstrip().startswith("sudo ") for c in commands)


def _key_file(target: str, key: Path) -> Finding:
    try:
        mode = key.stat().st_mode
    except FileNotFoundError:
        return Finding("ssh-key", target, False, f"{key} does not exist", "check ssh.key")
    except OSError as exc:
        return Finding("ssh-key", target, False, f"{key}: {exc.strerror}")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Finding(
            "ssh-key",
            target,
            False,
            f"{key} has mode {stat.S_IMODE(mode):04o}: ssh refuses a key others can read",
            f"chmod 600 {key}",
        )
    return Finding("ssh-key", target, True, f"{key} (mode {stat.S_IMODE(mode):04o})")


def _host_key(target: str, host: str, port: int, known_hosts: Path) -> Finding:
    name = host if port == 22 else f"[{host}]:{port}"
    scan = f"ssh-keyscan -p {port} {host} >> {known_hosts}"
    if not known_hosts.exists():
        return Finding("host-key", target, False, f"{known_hosts} does not exist", scan)
    try:
        found = subprocess.run(
            ["ssh-keygen", "-F", name, "-f", str(known_hosts)],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except FileNotFoundError:
        return Finding("host-key", target, None, "ssh-keygen is not installed: not checked")
    if found.returncode == 0 and found.stdout.strip():
        return Finding("host-key", target, True, f"{name} is in {known_hosts}")
    return Finding(
        "host-key",
        target,
        False,
        f"{name} is not in {known_hosts}: ssh refuses to connect",
        f"check the server's fingerprint, then {scan}",
    )


# --- DNS -------------------------------------------------------------------------------------


def _dns(loaded: LoadedConfig, name: str, timeout: float) -> list[Finding]:
    from failover.dns.apply import provider_for
    from failover.dns.plan import endpoint_of, managed_keys
    from failover.dns.verify import ask, find_nameservers

    site = loaded.config.sites[name]
    assert site.dns is not None
    keys = managed_keys(site)
    where = f"{name} ({site.dns.provider}, zone {site.dns.zone})"
    provider = provider_for(loaded, name)
    try:
        current = provider.read_many(keys)
    except FailoverError as exc:
        return [
            Finding(
                "dns",
                where,
                False,
                f"cannot read the zone: {str(exc).splitlines()[0]}",
                exc.hint or "check the provider's credentials and the zone's name",
            )
        ]
    finally:
        provider.close()
    out = [Finding("dns", where, True, "credentials accepted, zone readable")]
    for key in keys:
        have = current.get(key)
        label = f"{key.name} {key.rtype}"
        if have is None:
            out.append(
                Finding(
                    "records",
                    label,
                    False,
                    "no such record at the provider",
                    f"create it: failover dns set {name} --to ENDPOINT --yes",
                )
            )
        elif endpoint_of(site, key, have) is None:
            out.append(
                Finding(
                    "records",
                    label,
                    False,
                    f"holds {','.join(have.values)}, no endpoint's value (changed by hand?)",
                    f"failover dns set {name} --to ENDPOINT --yes --force puts one back",
                )
            )
        else:
            out.append(Finding("records", label, True, f"points at {endpoint_of(site, key, have)}"))
    try:
        servers = find_nameservers(site.dns.zone, site.dns.nameservers, timeout)
    except FailoverError as exc:
        return [*out, Finding("nameserver", site.dns.zone, False, str(exc), exc.hint)]
    for server in servers:
        answer = ask(server, keys[0], timeout)
        if answer.error:
            out.append(
                Finding(
                    "nameserver",
                    answer.server,
                    False,
                    f"does not answer for {site.dns.zone}: {answer.error}",
                    "a failover could not be verified: check the server or dns.nameservers",
                )
            )
        else:
            values = ",".join(answer.values or []) or "no record"
            out.append(
                Finding(
                    "nameserver", answer.server, True, f"authoritative, {keys[0].name} -> {values}"
                )
            )
    return out


# --- canaries, clock, notifications --------------------------------------------------------------


def _canaries(loaded: LoadedConfig) -> list[Finding]:
    from failover.watch.probes.engine import run_probes

    config = loaded.config
    if not config.canaries:
        return [
            Finding(
                "canary",
                "canaries",
                None,
                "none configured",
                "add canaries: without them an outage of this machine's network looks like "
                "the sites being down",
            )
        ]
    results = run_probes([(i, c, c.host, c.host) for i, c in enumerate(config.canaries)])
    out = []
    for i, canary in enumerate(config.canaries):
        r = results[i]
        label = f"{canary.host} {r.check}"
        if r.ok:
            out.append(Finding("canary", label, True, f"answers ({r.latency_ms or 0:.0f} ms)"))
        else:
            out.append(
                Finding("canary", label, False, r.detail, "pick canaries this machine can reach")
            )
    passing = sum(1 for f in out if f.ok)
    if passing < config.canary_min_ok:
        out.append(
            Finding(
                "canary",
                "canaries",
                False,
                f"{passing} pass, canary_min_ok is {config.canary_min_ok}: every round would "
                "count as this machine's network being down",
            )
        )
    return out


def _clock(loaded: LoadedConfig, timeout: float) -> list[Finding]:
    offsets: list[tuple[str, float]] = []
    for name, site in loaded.config.sites.items():
        http = next((c for c in site.checks if getattr(c, "type", "") in ("http", "https")), None)
        if http is None:
            continue
        for ep_name, endpoint in site.endpoints.items():
            offset = date_offset(endpoint.address, http, site.hostname, timeout)
            if offset is not None:
                offsets.append((f"{name}/{ep_name}", offset))
    return [clock_finding(offsets)]


def date_offset(address: str, check: Any, hostname: str, timeout: float) -> float | None:
    """The endpoint's clock minus ours (seconds), from the Date header of a HEAD request
    like the check's; None when it does not answer with one."""
    port = check.effective_port
    request = (
        f"HEAD {check.path} HTTP/1.1\r\nHost: {hostname}\r\nUser-Agent: failover-doctor\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if check.type == "https":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE  # only the Date header is read
                sock = ctx.wrap_socket(raw, server_hostname=hostname)
            sent = time.time()
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
            received = time.time()
    except (OSError, ssl.SSLError):
        return None
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "date":
            try:
                theirs = parsedate_to_datetime(value.strip()).timestamp()
            except (TypeError, ValueError):
                return None
            # the header is whole seconds, truncated: its middle is half a second later
            return theirs + 0.5 - (sent + received) / 2
    return None


def _notify(loaded: LoadedConfig) -> list[Finding]:
    config = loaded.config
    targets: list[tuple[str, Any]] = [(f"notify[{i}]", t) for i, t in enumerate(config.notify)]
    for name, site in config.sites.items():
        if site.notify is not None:
            targets += [
                (f"{name}.notify.targets[{i}]", t) for i, t in enumerate(site.notify.targets)
            ]
    if not targets:
        return [
            Finding(
                "notify",
                "targets",
                False,
                "no notification target: an outage or a failover reaches nobody",
                "add notify: [{url: ...}] (any apprise URL)",
            )
        ]
    import apprise

    out = []
    for label, target in targets:
        app = apprise.Apprise()
        if app.add(target.url.reveal()):
            kind = type(app[0]).__name__ if len(app) else "?"
            out.append(
                Finding("notify", label, True, f"a valid apprise URL ({kind}, {target.url.source})")
            )
        else:
            out.append(
                Finding(
                    "notify",
                    label,
                    False,
                    f"not a URL apprise can send to ({target.url.source}; the value is not shown)",
                    "see apprise's list of services for the URL's form",
                )
            )
    return out
