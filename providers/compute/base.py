"""The ComputeProvider interface: create a server, find it again, wait until it runs, delete it.

The base class owns the workflow around the hooks and the error boundary; adapters fill in:

- `_create(spec) -> Node`: ask the provider for a new server (idempotently where the API
  allows it: a retry with the same `spec.idempotency_key` must not create a second one).
- `_get(node_id) -> Node | None`: one server by id, None when the provider has none.
- `_find(name) -> list[Node]`: the servers of that name.
- `_destroy(node_id) -> bool`: delete a server; False when it was already gone.
- `_translate(exc, action) -> FailoverError | None`: turn an SDK error into one of the
  project's errors (AuthError, NotFound, RateLimited, Unreachable, ProviderError) with a hint.

Any exception that leaves a public method is a FailoverError with a one-line message that
names the provider and never holds a secret. Nothing here imports an SDK.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from failover.errors import NotFound, ProviderError
from providers.common import SecretScrubber, one_line

# The tag that carries the caller's idempotency key (the migrate run), and the site's name.
RUN_TAG = "failover:run"
SITE_TAG = "failover:site"

# States after which a server never runs again.
GONE_STATES = frozenset({"terminated"})
FAILED_STATES = frozenset({"terminated", "error"})

Progress = Callable[[str], None]
Want = Literal["public", "private"]


@dataclass(frozen=True)
class Node:
    """One server as the provider reports it. `state` is libcloud's NodeState value
    (running, pending, starting, stopped, terminated, error, unknown, ...)."""

    id: str
    name: str
    state: str
    public_ips: tuple[str, ...] = ()
    private_ips: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def gone(self) -> bool:
        return self.state in GONE_STATES

    @property
    def run_key(self) -> str | None:
        """The idempotency key the server was created with (where the driver has tags)."""
        return self.tags.get(RUN_TAG)

    def address(self, want: Want) -> str | None:
        """The first address of the wanted kind, or None while it has none."""
        ips = self.public_ips if want == "public" else self.private_ips
        return ips[0] if ips else None

    def describe(self) -> str:
        ips = ", ".join((*self.public_ips, *self.private_ips)) or "no address yet"
        return f"{self.name} ({self.id}, {self.state}, {ips})"


@dataclass(frozen=True)
class NodeSpec:
    """What to create. `idempotency_key` identifies the caller's attempt (the migrate run):
    the node is tagged with it, and it is the EC2 client token, so that a retry after a
    crash finds or gets back the same server instead of a second one."""

    name: str
    size: str
    image: str
    idempotency_key: str
    location: str | None = None
    ssh_key: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def all_tags(self) -> dict[str, str]:
        return {**self.tags, RUN_TAG: self.idempotency_key}


@dataclass(frozen=True)
class Capabilities:
    tags: bool = False
    """Nodes carry tags: find() can tell the node of one run from another of the same name."""
    idempotent_create: bool = False
    """The API itself returns the same node for a repeated create with the same key."""


class ComputeProvider(SecretScrubber):
    """One configured compute template's provider. Subclasses set `kind` and the hooks."""

    kind: ClassVar[str] = "?"
    capabilities: Capabilities = Capabilities()

    def __init__(self, name: str, config: Any) -> None:
        self.name = name
        self.config = config
        self._secrets: list[str] = []
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic

    # --- the public workflow ----------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"compute template {self.name} ({self.describe()})"

    def describe(self) -> str:
        return self.kind

    def create_node(self, spec: NodeSpec) -> Node:
        """Create a server. Where the API is idempotent, a repeat with the same
        `spec.idempotency_key` returns the server of the first call."""
        with self._boundary(f"creating server {spec.name}"):
            return self._create(spec)

    def get_node(self, node_id: str) -> Node | None:
        """The server with this id, or None when the provider has no such server. A deleted
        server the provider still lists comes back with state `terminated`."""
        with self._boundary(f"looking up server {node_id}"):
            return self._get(node_id)

    def find_nodes(self, name: str, idempotency_key: str | None = None) -> list[Node]:
        """The servers named `name` that still exist (not terminated). With a key, only the
        ones created with it, where the driver has tags; without tags the key cannot be
        checked and every server of that name is returned."""
        with self._boundary(f"looking for servers named {name}"):
            nodes = [n for n in self._find(name) if n.name == name and not n.gone]
        if idempotency_key is not None and self.capabilities.tags:
            nodes = [n for n in nodes if n.run_key == idempotency_key]
        return nodes

    def wait_running(
        self,
        node_id: str,
        timeout: float,
        want: Want = "public",
        *,
        interval: float = 10.0,
        progress: Progress | None = None,
    ) -> Node:
        """Poll until the server is running and has an address of the `want` kind; pauses
        start at 0.5 s and double up to `interval`. Raises ProviderError when it fails
        (terminated, error) or when `timeout` seconds pass, NotFound when it disappears."""
        deadline = self.clock() + timeout
        delay = min(0.5, interval)
        last: Node | None = None
        while True:
            node = self.get_node(node_id)
            if node is None:
                raise NotFound(
                    f"{self.label}: server {node_id} disappeared while booting",
                    hint="someone or something deleted it; check the provider's console",
                )
            changed = last is None or (node.state, node.address(want)) != (
                last.state,
                last.address(want),
            )
            if changed and progress is not None:
                progress(f"server {node.describe()}")
            last = node
            if node.state in FAILED_STATES:
                raise ProviderError(
                    f"{self.label}: server {node.describe()} failed to start",
                    hint="see the provider's console for why",
                )
            if node.running and node.address(want):
                return node
            remaining = deadline - self.clock()
            if remaining <= 0:
                missing = f"has no {want} address" if node.running else f"is still {node.state}"
                hint = (
                    "the template's `address: public` needs a public IP (ex_assign_public_ip "
                    "for ec2), or use `address: private`"
                    if node.running
                    else "raise boot_timeout, or look at the provider's console"
                )
                raise ProviderError(
                    f"{self.label}: server {node.describe()} {missing} after {timeout:g}s",
                    hint=hint,
                )
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, interval)

    def destroy_node(self, node_id: str) -> bool:
        """Delete the server. True when it was deleted now, False when it was already gone
        (so that a repeated cleanup is harmless)."""
        with self._boundary(f"deleting server {node_id}"):
            return self._destroy(node_id)

    def close(self) -> None:
        """Release clients and connections (the default has none)."""

    def __enter__(self) -> ComputeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- hooks ----------------------------------------------------------------------------

    def _create(self, spec: NodeSpec) -> Node:
        raise NotImplementedError

    def _get(self, node_id: str) -> Node | None:
        raise NotImplementedError

    def _find(self, name: str) -> list[Node]:
        raise NotImplementedError

    def _destroy(self, node_id: str) -> bool:
        raise NotImplementedError

    # --- helpers for adapters ------------------------------------------------------------


__all__ = [
    "RUN_TAG",
    "SITE_TAG",
    "Capabilities",
    "ComputeProvider",
    "Node",
    "NodeSpec",
    "Progress",
    "one_line",
]
