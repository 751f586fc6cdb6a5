"""The steps only a migrate has (see failover.runs.migrate):

- `provision`: create the server through the template's compute provider, idempotently
  across crashes: the idempotency key is written into the run's options before the
  provider is called, and the server's id as soon as it exists, so that a run killed at
  any point finds its server again instead of creating a second one. Its data carries the
  new endpoint's block, which makes the server an endpoint (`run.target`) for every later
  step (engine.with_new_endpoint).
- `wait_ssh`: the server's SSH port answers with a banner, then a real login works.
- `ensure_restic`: restic runs there; if not, it is installed with the server's package
  manager, or else the local restic binary (same architecture) is uploaded.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from failover.errors import RemoteError
from failover.logs import get_logger
from failover.runs import compute, journal
from failover.runs.model import StepContext, StepFailed, StepOut
from failover.runs.steps.common import remote_for

log = get_logger("migrate")

# Where an uploaded restic goes when backup.restic is a bare program name.
UPLOAD_PATH = "/usr/local/bin/restic"

# How to install restic with each package manager (run as root, or through sudo -n).
INSTALL: dict[str, str] = {
    "apt-get": "$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && "
    "$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic",
    "dnf": "$SUDO dnf install -y restic",
    "yum": "$SUDO yum install -y restic",
    "apk": "$SUDO apk add --no-cache restic",
    "zypper": "$SUDO zypper --non-interactive install restic",
    "pacman": "$SUDO pacman -S --noconfirm restic",
}
_DETECT = (
    "for pm in " + " ".join(INSTALL) + "; do "
    'if command -v "$pm" >/dev/null 2>&1; then echo "$pm"; exit 0; fi; done; exit 1'
)
_SUDO = 'if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi\n'
# stdin (after the prelude's environment lines) is the binary; $1 is where it goes.
_UPLOAD = (
    _SUDO
    + """\
set -e
$SUDO mkdir -p "$(dirname "$1")"
$SUDO sh -c 'cat > "$1.failover-upload" && chmod 755 "$1.failover-upload" && \
mv -f "$1.failover-upload" "$1"' sh "$1"
"""
)
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "armv7l": "arm", "armv6l": "arm"}


def step_provision(ctx: StepContext) -> StepOut:
    """Create the new server (or find the one an interrupted attempt of this run created)
    and wait until it runs with its address."""
    run = ctx.run
    template_name = run.options.get("template")
    if not template_name:
        raise StepFailed(f"run #{run.id} names no compute template to create a server from")
    options = dict(run.options)
    key = options.get("idempotency_key")
    if not key:
        # Journaled before the provider hears of it: a retry after a crash at any point
        # uses the same key, and the provider's find-by-tag (or client token) returns the
        # server of the first attempt.
        key = f"{run.site}-{run.id}-{uuid.uuid4().hex[:8]}"
        options["idempotency_key"] = key
        _save_options(ctx, options)

    def on_created(node: Any) -> None:
        options["node_id"] = node.id
        options["node_name"] = node.name
        _save_options(ctx, options)

    node = compute.provision(
        ctx.loaded,
        template_name,
        run.site,
        key,
        ctx.progress,
        node_id=options.get("node_id"),
        on_created=on_created,
    )
    if options.get("node_id") != node.id:  # found again by its tag after a crash
        on_created(node)
    template = compute.template_for(ctx.loaded, template_name)
    block = compute.endpoint_block(template, node, template_name)
    log.info(
        "server %s is %s", node.describe(), run.target, extra={"site": run.site, "run": str(run.id)}
    )
    return (
        f"server {node.describe()} from compute template {template_name}",
        {"node_id": node.id, "node_name": node.name, "template": template_name, "endpoint": block},
    )


def step_wait_ssh(ctx: StepContext) -> StepOut:
    """The new server's SSH port answers, then a real login (user, key, host key) works."""
    from providers.remote import Remote

    run = ctx.run
    template_name = ctx.data.get("template") or run.options.get("template")
    if not template_name or run.target not in ctx.site.endpoints:
        raise StepFailed(f"no server was provisioned for {run.target}")
    template = compute.template_for(ctx.loaded, template_name)
    ep = ctx.site.endpoints[run.target]
    if ep.ssh is None:
        raise StepFailed(f"{run.target} has no ssh settings")
    deadline = time.monotonic() + template.ssh_timeout
    banner = compute.wait_ssh_banner(
        ep.address,
        ep.ssh.port,
        template.ssh_timeout,
        interval=template.poll_interval,
        progress=ctx.progress,
    )
    remote = Remote(
        ep.ssh,
        ep.address,
        name=run.target,
        connect_timeout=max(1.0, min(10.0, template.ssh_timeout)),
    )
    delay = min(1.0, template.poll_interval)
    while True:
        try:
            remote.run(["true"], timeout=max(15.0, min(60.0, template.ssh_timeout)))
            break
        except RemoteError as exc:
            text = str(exc)
            if "host key" in text:
                known = ep.ssh.known_hosts or "known_hosts"
                raise StepFailed(
                    f"{text}; the new server's host key must be in {known} before the "
                    f"tool logs in: check it (the provider's console shows it) and add it, "
                    f"e.g. `ssh-keyscan -p {ep.ssh.port} {ep.address} >> {known}` once "
                    "verified, then run the same command again (or, trusting the first key "
                    "seen, leave the template's ssh.known_hosts unset and put "
                    "StrictHostKeyChecking=accept-new in its ssh.options)"
                ) from None
            if time.monotonic() >= deadline:
                raise StepFailed(f"{run.target} answers SSH but the login fails: {text}") from None
            ctx.progress(f"login to {run.target} not possible yet ({text}); retrying")
            time.sleep(delay)
            delay = min(delay * 2, template.poll_interval)
    return f"{run.target} ({ep.address}) answers over SSH ({banner})", {}


def step_ensure_restic(ctx: StepContext) -> StepOut:
    """restic runs on the target; otherwise install it (package manager) or upload it."""
    run, site = ctx.run, ctx.site
    remote = remote_for(ctx.loaded, run.site, run.target)
    binary = site.backup.restic if site.backup is not None else "restic"
    version = _restic_version(remote, binary)
    if version:
        return f"{version} is there on {run.target}", {}
    ctx.progress(f"restic ({binary}) is not installed on {run.target}")
    problems: list[str] = []
    if "/" not in binary:
        manager = _package_manager(remote)
        if manager is None:
            problems.append("no package manager found (apt-get, dnf, yum, apk, zypper, pacman)")
        else:
            ctx.progress(f"installing restic on {run.target} with {manager}")
            try:
                remote.run(
                    ["/bin/sh", "-c", _SUDO + INSTALL[manager]],
                    timeout=max(300.0, site.failover.command_timeout),
                )
            except RemoteError as exc:
                problems.append(f"{manager} failed: {exc}")
            else:
                version = _restic_version(remote, binary)
                if version:
                    return f"installed {version} on {run.target} with {manager}", {}
                problems.append(f"{manager} ran, but `{binary} version` still fails")
    dest = binary if binary.startswith("/") else UPLOAD_PATH
    try:
        uploaded = _upload_restic(ctx, remote, dest)
    except StepFailed as exc:
        problems.append(str(exc))
        raise StepFailed(
            f"restic is missing on {run.target} and could not be put there: " + "; ".join(problems)
        ) from None
    version = _restic_version(remote, binary)
    if not version:
        raise StepFailed(
            f"uploaded restic to {run.target}:{dest}, but `{binary} version` "
            f"does not run it there (is {dest} on the PATH?): set the backup's "
            f"`restic: {dest}`"
        )
    return f"uploaded {uploaded} to {run.target}:{dest} ({version})", {}


def _save_options(ctx: StepContext, options: dict[str, Any]) -> None:
    journal.set_options(ctx.store, ctx.run.id, options)
    ctx.run.options = dict(options)


def _restic_version(remote: Any, binary: str) -> str | None:
    result = remote.run([binary, "version"], check=False, timeout=60)
    first = result.text.strip().splitlines()[0] if result.text.strip() else ""
    if result.returncode == 0 and first.startswith("restic"):
        return " ".join(first.split()[:2])
    return None


def _package_manager(remote: Any) -> str | None:
    result = remote.run(["/bin/sh", "-c", _DETECT], check=False, timeout=30)
    name = result.text.strip()
    return name if result.returncode == 0 and name in INSTALL else None


def _arch(name: str) -> str:
    name = name.strip().lower()
    return _ARCH_ALIASES.get(name, name)


def _upload_restic(ctx: StepContext, remote: Any, dest: str) -> str:
    """Copy this machine's restic to `dest` on the target (same OS and architecture)."""
    import platform
    import shutil

    local = shutil.which("restic")
    if local is None:
        raise StepFailed("there is no restic on this machine to upload either")
    probe = remote.run(["uname", "-sm"], check=False, timeout=30).text.split()
    remote_os, remote_arch = [*probe, "?", "?"][:2]
    here_os, here_arch = platform.system(), _arch(platform.machine())
    if remote_os != here_os or _arch(remote_arch) != here_arch:
        raise StepFailed(
            f"the local restic is for {here_os} {here_arch}, the server runs "
            f"{remote_os} {remote_arch}: install restic there by hand"
        )
    with open(local, "rb") as fh:
        data = fh.read()
    ctx.progress(f"uploading {local} ({len(data) // 1024} KiB) to {ctx.run.target}:{dest}")
    try:
        remote.run(
            [dest],
            script=_UPLOAD,
            input=data,
            timeout=max(120.0, ctx.site.failover.command_timeout),
        )
    except RemoteError as exc:
        raise StepFailed(f"uploading restic failed: {exc}") from None
    return local
