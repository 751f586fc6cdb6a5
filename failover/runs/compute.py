"""Provisioning a server from a compute template: the thin core that `migrate --provision`
calls. No store writes here: the run's steps journal what these functions return.

- `provision()` finds the server an earlier, interrupted attempt with the same idempotency
  key created (by the id the run journaled, else by name and run tag), or creates one,
  then waits until it runs and has the template's kind of address.
- `wait_ssh_banner()` waits until that address answers with an SSH banner.
- `endpoint_block()` is the endpoint entry for the new server (address and ssh).
- `destroy()` deletes a server (harmless when it is already gone).

Provider modules (and libcloud) are imported only inside these functions.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from failover.errors import ProviderError, Unreachable, UsageError

if TYPE_CHECKING:
    from failover.config.compute import ComputeTemplate
    from failover.config.load import LoadedConfig
    from providers.compute.base import ComputeProvider, Node, NodeSpec

Progress = Callable[[str], None]
ProviderFactory = Callable[[str, Any], "ComputeProvider"]


def _quiet(_message: str) -> None:
    return None


def template_for(loaded: LoadedConfig, template_name: str) -> ComputeTemplate:
    """The compute template `template_name`, or a UsageError naming the ones there are."""
    template = loaded.config.compute_templates.get(template_name)
    if template is None:
        known = ", ".join(sorted(loaded.config.compute_templates)) or "none configured"
        raise UsageError(
            f"no compute template {template_name!r} in {loaded.path} (compute_templates: {known})"
        )
    return template


def provider_for_template(
    loaded: LoadedConfig, template_name: str, factory: ProviderFactory | None = None
) -> ComputeProvider:
    """The compute provider of a template (not connected yet: nothing is sent until a
    method is called). Close it after use, or use it as a context manager."""
    template = template_for(loaded, template_name)
    if factory is None:
        from providers.compute import make_provider

        factory = make_provider
    return factory(template_name, template)


def node_spec(template: ComputeTemplate, site_name: str, idempotency_key: str) -> NodeSpec:
    """What to ask the provider for, for `site_name`, tagged with the site and the key."""
    from providers.compute.base import SITE_TAG, NodeSpec

    return NodeSpec(
        name=template.node_name(site_name),
        size=template.size,
        image=template.image,
        idempotency_key=idempotency_key,
        location=template.location,
        ssh_key=template.ssh_key,
        tags={**template.tags, SITE_TAG: site_name},
        extra=dict(template.extra),
    )


def provision(
    loaded: LoadedConfig,
    template_name: str,
    site_name: str,
    idempotency_key: str,
    progress: Progress | None = None,
    *,
    node_id: str | None = None,
    on_created: Callable[[Node], None] | None = None,
    factory: ProviderFactory | None = None,
) -> Node:
    """The running server for this attempt, with its address (template.address).

    `idempotency_key` identifies the attempt (the migrate run's id): the server is tagged
    with it, and a repeat call with the same key returns the same server instead of
    creating a second one. `node_id` is the id the runbook journaled from an earlier call
    (it is used first); `on_created` is called with the new server right after it was
    created, before the wait, so that the runbook can journal its id.

    Raises ProviderError (AuthError, NotFound, RateLimited, Unreachable) when the provider
    refuses or cannot be reached, or when the server does not run with its address within
    template.boot_timeout. A server created before the failure is not deleted here: the
    error names it, and `destroy()` deletes it.
    """
    say = progress or _quiet
    template = template_for(loaded, template_name)
    spec = node_spec(template, site_name, idempotency_key)
    with provider_for_template(loaded, template_name, factory) as provider:
        node = _existing(provider, spec, node_id, say)
        if node is None:
            say(
                f"creating server {spec.name} ({template.size}, {template.image}) "
                f"from compute template {template_name}"
            )
            node = provider.create_node(spec)
            say(f"created server {node.describe()}")
            if on_created is not None:
                on_created(node)
        if not (node.running and node.address(template.address)):
            say(
                f"waiting up to {template.boot_timeout:g}s for server {node.id} to run with "
                f"a {template.address} address"
            )
        node = provider.wait_running(
            node.id,
            template.boot_timeout,
            template.address,
            interval=template.poll_interval,
            progress=say,
        )
        say(f"server {node.name} ({node.id}) is running at {node_address(template, node)}")
        return node


def _existing(
    provider: ComputeProvider, spec: NodeSpec, node_id: str | None, say: Progress
) -> Node | None:
    if node_id is not None:
        node = provider.get_node(node_id)
        if node is not None and not node.gone:
            say(f"resuming with server {node.describe()}")
            return node
        raise ProviderError(
            f"{provider.label}: the server this run created ({node_id}) is gone",
            hint="start a new migrate: it creates a new server",
        )
    found = sorted(provider.find_nodes(spec.name, spec.idempotency_key), key=lambda n: n.id)
    if not found:
        return None
    node = found[0]
    how = "created earlier by this run" if provider.capabilities.tags else "found by its name"
    say(f"resuming with server {node.describe()}, {how}")
    if len(found) > 1:
        others = ", ".join(n.describe() for n in found[1:])
        say(f"warning: more servers named {spec.name} belong to this run: {others}")
    return node


def destroy(
    loaded: LoadedConfig,
    template_name: str,
    node_id: str,
    progress: Progress | None = None,
    *,
    factory: ProviderFactory | None = None,
) -> bool:
    """Delete the server `node_id`. True when it was deleted now, False when it was already
    gone (a repeated cleanup is harmless)."""
    say = progress or _quiet
    with provider_for_template(loaded, template_name, factory) as provider:
        deleted = provider.destroy_node(node_id)
    say(f"deleted server {node_id}" if deleted else f"server {node_id} was already gone")
    return deleted


def node_address(template: ComputeTemplate, node: Node) -> str:
    """The address that becomes the endpoint's: the node's first public or private IP, as
    the template says."""
    address = node.address(template.address)
    if address is None:
        raise ProviderError(
            f"server {node.describe()} has no {template.address} address",
            hint="set the template's `address` to the kind the server gets",
        )
    return address


def endpoint_block(
    template: ComputeTemplate, node: Node, template_name: str | None = None
) -> dict[str, Any]:
    """The new endpoint's entry for the config file (`sites.SITE.endpoints.NAME`), as plain
    data: address, description, ssh. It validates as an `Endpoint`."""
    ssh: dict[str, Any] = {"user": template.ssh.user, "port": template.ssh.port}
    if template.ssh.key is not None:
        ssh["key"] = str(template.ssh.key)
    if template.ssh.known_hosts is not None:
        ssh["known_hosts"] = str(template.ssh.known_hosts)
    if template.ssh.options:
        ssh["options"] = list(template.ssh.options)
    origin = f" from compute template {template_name}" if template_name else ""
    return {
        "address": node_address(template, node),
        "description": f"server {node.name} ({node.id}){origin}",
        "ssh": ssh,
    }


def wait_ssh_banner(
    host: str,
    port: int,
    timeout: float,
    *,
    interval: float = 10.0,
    progress: Progress | None = None,
) -> str:
    """Connect to host:port until it sends a line starting with SSH- (pauses start at
    0.5 s and double up to `interval`); returns that line."""
    say = progress or _quiet
    say(f"waiting up to {timeout:g}s for SSH on {host}:{port}")
    deadline = time.monotonic() + timeout
    delay = min(0.5, interval)
    last = "no answer yet"
    while True:
        remaining = deadline - time.monotonic()
        try:
            banner = _banner(host, port, max(0.5, min(5.0, remaining)))
        except OSError as exc:
            last = exc.strerror or exc.__class__.__name__
        else:
            if banner.startswith("SSH-"):
                say(f"SSH answers on {host}:{port}: {banner}")
                return banner
            last = f"not an SSH server: {banner[:60]!r}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Unreachable(
                f"{host}:{port} did not answer SSH within {timeout:g}s ({last})",
                hint="check the server's firewall/security group and that sshd starts; "
                "raise ssh_timeout if it boots slowly",
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, interval)


def _banner(host: str, port: int, timeout: float) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = b""
        while b"\n" not in data and len(data) < 256:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0].decode("ascii", "replace").strip()


__all__ = [
    "destroy",
    "endpoint_block",
    "node_address",
    "node_spec",
    "provider_for_template",
    "provision",
    "template_for",
    "wait_ssh_banner",
]
