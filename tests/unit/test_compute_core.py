"""The pure parts of provisioning: the provider workflow (wait_running's polling, find by
run key, the error boundary) over an in-memory adapter, the core's find-or-create logic,
endpoint blocks, and how libcloud's errors become the project's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from failover.config.load import LoadedConfig, parse_config
from failover.config.models import Endpoint
from failover.errors import (
    AuthError,
    FailoverError,
    NotFound,
    ProviderError,
    RateLimited,
    Unreachable,
)
from failover.runs import compute
from providers.compute.base import (
    RUN_TAG,
    SITE_TAG,
    Capabilities,
    ComputeProvider,
    Node,
    NodeSpec,
)
from providers.compute.libcloud import LibcloudComputeProvider, client_token

CONFIG = """\
compute_templates:
  small:
    driver: ec2
    key: ${KEY_ID}
    secret: ${KEY_SECRET}
    size: t3.small
    image: ami-1
    name: "{site}-new"
    address: private
    boot_timeout: 30s
    poll_interval: 4s
    ssh: {user: admin, port: 2222, key: /etc/failover/id, options: [ConnectTimeout=5]}
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 192.0.2.1}
    checks:
      - {type: tcp, port: 22}
"""
ENV = {"KEY_ID": "AKIAEXAMPLEKEY", "KEY_SECRET": "very-secret-value"}


def loaded() -> LoadedConfig:
    return parse_config(CONFIG, "f.yaml", env=ENV, base_dir=Path("/tmp"))


class FakeCloud(ComputeProvider):
    """An in-memory provider: servers boot after `boot_polls` looks, get a private address
    at once and a public one only when `public` is set."""

    kind = "fake"
    capabilities = Capabilities(tags=True)

    def __init__(
        self,
        name: str,
        config: Any,
        *,
        boot_polls: int = 2,
        public: bool = False,
        fail_with: BaseException | None = None,
    ) -> None:
        super().__init__(name, config)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.boot_polls = boot_polls
        self.public = public
        self.fail_with = fail_with
        self.created: list[NodeSpec] = []
        self.now = 0.0
        self.sleeps: list[float] = []
        self.clock = lambda: self.now
        self.sleep = self._sleep
        self.closed = False

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def _node(self, node_id: str) -> Node:
        n = self.nodes[node_id]
        running = n["polls"] >= self.boot_polls and n["state"] != "terminated"
        return Node(
            id=node_id,
            name=n["name"],
            state="running" if running else n["state"],
            public_ips=("203.0.113.5",) if self.public and running else (),
            private_ips=("10.0.0.5",),
            tags=dict(n["tags"]),
        )

    def _create(self, spec: NodeSpec) -> Node:
        if self.fail_with is not None:
            raise self.fail_with
        self.created.append(spec)
        node_id = f"n-{len(self.nodes) + 1}"
        self.nodes[node_id] = {
            "name": spec.name,
            "state": "pending",
            "polls": 0,
            "tags": spec.all_tags(),
        }
        return self._node(node_id)

    def _get(self, node_id: str) -> Node | None:
        if node_id not in self.nodes:
            return None
        self.nodes[node_id]["polls"] += 1
        return self._node(node_id)

    def _find(self, name: str) -> list[Node]:
        return [self._node(i) for i, n in self.nodes.items() if n["name"] == name]

    def _destroy(self, node_id: str) -> bool:
        if node_id not in self.nodes or self.nodes[node_id]["state"] == "terminated":
            return False
        self.nodes[node_id]["state"] = "terminated"
        return True

    def close(self) -> None:
        self.closed = True


def factory_for(cloud: FakeCloud) -> Any:
    def factory(name: str, template: Any) -> FakeCloud:
        cloud.name, cloud.config = name, template
        return cloud

    return factory


def test_provision_creates_tags_waits_and_closes() -> None:
    cloud = FakeCloud("small", None)
    said: list[str] = []
    journaled: list[str] = []
    node = compute.provision(
        loaded(),
        "small",
        "shop",
        "run-1",
        said.append,
        on_created=lambda n: journaled.append(n.id),
        factory=factory_for(cloud),
    )
    assert node.running and node.id == "n-1" and journaled == ["n-1"]
    (spec,) = cloud.created
    assert spec.name == "shop-new"
    assert spec.size == "t3.small" and spec.image == "ami-1"
    assert spec.all_tags() == {SITE_TAG: "shop", RUN_TAG: "run-1"}
    assert cloud.closed
    assert said[-1] == "server shop-new (n-1) is running at 10.0.0.5"


def test_provision_again_with_the_same_key_creates_nothing() -> None:
    cloud = FakeCloud("small", None)
    first = compute.provision(loaded(), "small", "shop", "run-1", factory=factory_for(cloud))
    said: list[str] = []
    again = compute.provision(
        loaded(), "small", "shop", "run-1", said.append, factory=factory_for(cloud)
    )
    assert again.id == first.id and len(cloud.created) == 1
    assert "created earlier by this run" in said[0]
    other = compute.provision(loaded(), "small", "shop", "run-2", factory=factory_for(cloud))
    assert other.id != first.id and len(cloud.created) == 2


def test_provision_by_journaled_id_and_gone_server() -> None:
    cloud = FakeCloud("small", None)
    first = compute.provision(loaded(), "small", "shop", "run-1", factory=factory_for(cloud))
    assert (
        compute.provision(
            loaded(), "small", "shop", "run-1", node_id=first.id, factory=factory_for(cloud)
        ).id
        == first.id
    )
    assert compute.destroy(loaded(), "small", first.id, factory=factory_for(cloud)) is True
    with pytest.raises(ProviderError, match=r"the server this run created \(n-1\) is gone"):
        compute.provision(
            loaded(), "small", "shop", "run-1", node_id=first.id, factory=factory_for(cloud)
        )
    assert len(cloud.created) == 1


def test_wait_running_backs_off_up_to_the_interval_then_times_out() -> None:
    cloud = FakeCloud("small", None, boot_polls=1000)
    cloud.config = loaded().config.compute_templates["small"]
    node = cloud.create_node(NodeSpec("x", "s", "i", "k"))
    with pytest.raises(ProviderError) as err:
        cloud.wait_running(node.id, timeout=30, want="private", interval=4)
    assert cloud.sleeps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert sum(cloud.sleeps) == pytest.approx(30)
    assert "is still pending after 30s" in str(err.value)
    assert "boot_timeout" in str(err.value)


def test_wait_running_needs_the_wanted_address() -> None:
    cloud = FakeCloud("small", None, boot_polls=1, public=False)
    node = cloud.create_node(NodeSpec("x", "s", "i", "k"))
    assert cloud.wait_running(node.id, 10, "private").address("private") == "10.0.0.5"
    with pytest.raises(ProviderError, match="has no public address after 10s"):
        cloud.wait_running(node.id, 10, "public")


def test_wait_running_fails_fast_when_the_server_dies_or_vanishes() -> None:
    cloud = FakeCloud("small", None, boot_polls=1000)
    node = cloud.create_node(NodeSpec("x", "s", "i", "k"))
    cloud.nodes[node.id]["state"] = "error"
    with pytest.raises(ProviderError, match="failed to start"):
        cloud.wait_running(node.id, 600, "private")
    assert cloud.sleeps == []
    del cloud.nodes[node.id]
    with pytest.raises(NotFound, match="disappeared"):
        cloud.wait_running(node.id, 600, "private")


def test_boundary_names_the_template_and_scrubs_secrets() -> None:
    cloud = FakeCloud("small", None, fail_with=RuntimeError("boom with very-secret-value"))
    cloud._secret("very-secret-value")
    with pytest.raises(ProviderError) as err:
        cloud.create_node(NodeSpec("x", "s", "i", "k"))
    assert str(err.value) == (
        "compute template small (fake): creating server x failed: RuntimeError: boom with ***"
    )


def test_endpoint_block_validates_as_an_endpoint() -> None:
    template = loaded().config.compute_templates["small"]
    node = Node("i-1", "shop-new", "running", ("203.0.113.9",), ("10.1.2.3",))
    block = compute.endpoint_block(template, node, "small")
    assert block == {
        "address": "10.1.2.3",
        "description": "server shop-new (i-1) from compute template small",
        "ssh": {
            "user": "admin",
            "port": 2222,
            "key": "/etc/failover/id",
            "options": ["ConnectTimeout=5"],
        },
    }
    endpoint = Endpoint.model_validate(block)
    assert endpoint.ssh is not None and endpoint.ssh.port == 2222
    public = template.model_copy(update={"address": "public"})
    assert compute.endpoint_block(public, node)["address"] == "203.0.113.9"
    with pytest.raises(ProviderError, match="has no public address"):
        compute.node_address(public, Node("i-2", "n", "running", (), ("10.1.2.4",)))


def test_client_token_fits_ec2s_limit() -> None:
    assert client_token("run-12") == "run-12"
    long = client_token("x" * 100)
    assert len(long) == 64 and long == client_token("x" * 100)
    assert client_token("run-ü") != "run-ü"


# --- libcloud errors -> project errors --------------------------------------------------------


def libcloud_provider() -> LibcloudComputeProvider:
    return LibcloudComputeProvider("small", loaded().config.compute_templates["small"])


def translate(exc: BaseException) -> FailoverError | None:
    return libcloud_provider()._translate(exc, "creating server x")


def http(code: int, message: str) -> BaseException:
    from libcloud.common.exceptions import BaseHTTPError

    return BaseHTTPError(code, message)


@pytest.mark.parametrize(
    ("make", "cls", "needle"),
    [
        (
            lambda: __import__("libcloud.common.types", fromlist=["x"]).InvalidCredsError(
                "AuthFailure: AWS was not able to validate"
            ),
            AuthError,
            "authentication failed",
        ),
        (lambda: http(403, "UnauthorizedOperation: no"), AuthError, "access denied (HTTP 403)"),
        (
            lambda: http(400, "InstanceLimitExceeded: Your quota allows for 0 more"),
            ProviderError,
            "refused by the account's quota",
        ),
        (
            lambda: http(400, "VcpuLimitExceeded: You have requested more vCPU capacity"),
            ProviderError,
            "quota",
        ),
        (
            lambda: http(422, "You have reached the droplet limit; quota exceeded"),
            ProviderError,
            "quota",
        ),
        (
            lambda: http(503, "RequestLimitExceeded: Request limit exceeded."),
            RateLimited,
            "rate limited",
        ),
        (lambda: http(429, "slow down"), RateLimited, "rate limited"),
        (
            lambda: http(400, "InvalidAMIID.NotFound: The image id '[ami-1]' does not exist"),
            NotFound,
            "image not found",
        ),
        (
            lambda: http(400, "InvalidKeyPair.NotFound: The key pair 'k' does not exist"),
            NotFound,
            "SSH key not found",
        ),
        (
            lambda: http(400, "InvalidSubnetID.NotFound: The subnet ID 's' does not exist"),
            NotFound,
            "subnet not found",
        ),
        (
            lambda: http(400, "InvalidParameterValue: Invalid value 'zz' for InstanceType."),
            NotFound,
            "size not found",
        ),
        (
            lambda: http(500, "InsufficientInstanceCapacity: none left"),
            ProviderError,
            "no capacity",
        ),
        (lambda: http(500, "InternalError"), ProviderError, "HTTP 500: InternalError"),
        (lambda: ConnectionRefusedError(111, "Connection refused"), Unreachable, "refused"),
    ],
)
def test_libcloud_errors_become_project_errors(make: Any, cls: type, needle: str) -> None:
    error = translate(make())
    assert type(error) is cls
    assert needle in str(error)
    assert "\n" not in str(error)


def test_a_reused_client_token_with_other_parameters_is_explained() -> None:
    from libcloud.compute.drivers.ec2 import IdempotentParamError

    error = translate(IdempotentParamError("IdempotentParameterMismatch: token reused"))
    assert type(error) is ProviderError
    assert "already requested with this run's key" in str(error)


def test_requests_connection_errors_are_unreachable() -> None:
    import requests

    inner = ConnectionRefusedError(111, "Connection refused")
    outer = requests.exceptions.ConnectionError(inner)
    error = translate(outer)
    assert isinstance(error, Unreachable)
    assert "cannot reach the API: connection refused" in str(error)
    assert isinstance(translate(requests.exceptions.ReadTimeout("x")), Unreachable)


def test_auth_hint_names_the_references_not_the_values() -> None:
    from libcloud.common.types import InvalidCredsError

    error = translate(InvalidCredsError("bad"))
    assert error is not None
    assert error.hint == "check the credentials (${KEY_ID} and ${KEY_SECRET})"


def test_ssh_key_argument_per_driver() -> None:
    provider = libcloud_provider()
    provider._family = "ec2"
    provider._driver_obj = object()  # no API calls in _create_kwargs without a subnet id
    spec = NodeSpec(
        "n", "s", "i", "run-1", ssh_key="k", tags={"a": "b"}, extra={"ex_assign_public_ip": True}
    )
    kwargs = provider._create_kwargs(spec)
    assert kwargs == {
        "ex_assign_public_ip": True,
        "ex_keyname": "k",
        "ex_clienttoken": "run-1",
        "ex_metadata": {"a": "b", RUN_TAG: "run-1"},
    }
    provider._family = "digitalocean"
    assert provider._create_kwargs(spec)["ex_ssh_key_ids"] == ["k"]
    provider._family = "linode"
    with pytest.raises(ProviderError, match="does not know how the ec2 driver takes an SSH key"):
        provider._create_kwargs(spec)
    assert provider._create_kwargs(NodeSpec("n", "s", "i", "k", extra={"x": 1})) == {"x": 1}
