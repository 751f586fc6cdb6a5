"""Any cloud that Apache Libcloud has a compute driver for.

libcloud is imported only when a template is used. The template names its size, image and
location by id or name; they are looked up before anything is created, so that a typo is a
NotFound naming which of them is wrong instead of a half-made server.

Drivers differ in how they take an SSH key and whether servers carry tags; what this module
knows per driver family (the driver class's `type`, so that a subclass of the EC2 driver is
EC2 too):

- ec2: the key pair name goes in `ex_keyname`; tags (failover:run, failover:site, the
  template's) are set in the same RunInstances call as `ex_metadata`, and the idempotency
  key is the client token (`ex_clienttoken`): EC2 returns the first server for a repeated
  call instead of starting a second one. `extra.ex_subnet` may be a subnet id.
- openstack, ovh: `ex_keyname`; digitalocean, vultr: `ex_ssh_key_ids` (a list).
- any other driver: no tags, so a resumed run finds its server by name only; pass the SSH
  key in `extra` under the driver's own argument name.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from typing import Any

from failover.errors import (
    AuthError,
    FailoverError,
    NotFound,
    ProviderError,
    RateLimited,
    Unreachable,
)
from providers.common import connection_refused, exception_chain, libcloud_driver
from providers.compute.base import (
    Capabilities,
    ComputeProvider,
    Node,
    NodeSpec,
    one_line,
)

# How each driver family takes the provider's SSH key: (keyword, as a list?).
SSH_KEY_ARGS: dict[str, tuple[str, bool]] = {
    "ec2": ("ex_keyname", False),
    "openstack": ("ex_keyname", False),
    "ovh": ("ex_keyname", False),
    "digitalocean": ("ex_ssh_key_ids", True),
    "vultr": ("ex_ssh_key_ids", True),
}
TAGGED = frozenset({"ec2"})

_EC2_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")

# Error codes in an API's error text, and what they mean.
_RATE = re.compile(r"RequestLimitExceeded|Throttl|TooManyRequests|rate limit", re.I)
_QUOTA = re.compile(
    r"\w*LimitExceeded|quota|limit (?:exceeded|reached)|exceeds? (?:your|the) \w* ?limit", re.I
)
_CAPACITY = re.compile(r"InsufficientInstanceCapacity|InsufficientCapacity", re.I)
_NOT_FOUND: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"InvalidAMIID|image.*(?:not found|does not exist)", re.I),
        "image",
        "check the template's image",
    ),
    (re.compile(r"InvalidInstanceType|instance ?type", re.I), "size", "check the template's size"),
    (
        re.compile(r"InvalidKeyPair|key ?pair", re.I),
        "SSH key",
        "check the template's ssh_key: the key's name at the provider",
    ),
    (re.compile(r"InvalidSubnetID|subnet", re.I), "subnet", "check extra.ex_subnet"),
    (
        re.compile(r"InvalidGroup|security group", re.I),
        "security group",
        "check extra.ex_security_group_ids",
    ),
    (
        re.compile(r"InvalidAvailabilityZone|availability zone", re.I),
        "location",
        "check the template's location",
    ),
]


class LibcloudComputeProvider(ComputeProvider):
    kind = "libcloud"

    def __init__(self, name: str, config: Any) -> None:
        super().__init__(name, config)
        self.driver_name: str = config.driver
        self._driver_obj: Any = None
        self._family: str | None = None
        self._raw: dict[str, Any] = {}

    def describe(self) -> str:
        where = ""
        host = self.config.args.get("host")
        if host:
            port = self.config.args.get("port")
            where = f" at {host}:{port}" if port else f" at {host}"
        region = self.config.args.get("region")
        return f"libcloud {self.driver_name}{f' {region}' if region else ''}{where}"

    # --- the private client ----------------------------------------------------------------

    def _driver_class(self) -> Any:
        if ":" in self.driver_name:
            module_name, _, class_name = self.driver_name.partition(":")
            try:
                return getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError) as exc:
                raise ProviderError(
                    f"cannot load the driver class {self.driver_name}: {one_line(exc)}",
                    hint="`driver` is a libcloud provider name or package.module:Class",
                ) from None
        from libcloud.compute.providers import get_driver
        from libcloud.compute.types import Provider

        value = getattr(Provider, self.driver_name.upper(), self.driver_name)
        try:
            return get_driver(value)
        except (AttributeError, KeyError, ValueError, ImportError):
            raise ProviderError(
                f"libcloud has no compute driver {self.driver_name!r}",
                hint="use a name of libcloud.compute.types.Provider, e.g. ec2, digitalocean",
            ) from None

    def _driver(self) -> Any:
        if self._driver_obj is not None:
            return self._driver_obj
        cls = self._driver_class()
        self._family = str(getattr(cls, "type", None) or self.driver_name).lower()
        if self._family in TAGGED:
            self.capabilities = Capabilities(tags=True, idempotent_create=True)
        self._driver_obj = libcloud_driver(
            self, cls, self.driver_name, self.config, dict(self.config.args)
        )
        return self._driver_obj

    @property
    def family(self) -> str:
        self._driver()
        assert self._family is not None
        return self._family

    # --- looking things up ---------------------------------------------------------------

    def _size(self, wanted: str, location: Any) -> Any:
        driver = self._driver()
        sizes = list(driver.list_sizes(location) if location is not None else driver.list_sizes())
        for size in sizes:
            if wanted in (str(size.id), str(size.name)):
                return size
        if self.family == "ec2" and _EC2_TYPE.match(wanted):
            # libcloud's EC2 sizes are a table shipped with it: a type newer than the table
            # is passed on as it is, and EC2 itself says whether it exists.
            from libcloud.compute.base import NodeSize

            return NodeSize(wanted, wanted, 0, 0, 0, 0, driver)
        raise NotFound(
            f"size {wanted!r} not found",
            hint=f"check the template's size; some the driver knows: {_some(s.id for s in sizes)}",
        )

    def _image(self, wanted: str) -> Any:
        driver = self._driver()
        if self.family == "ec2":
            if wanted.startswith("ami-"):
                return driver.get_image(wanted)  # InvalidAMIID.NotFound when unknown
            images = list(driver.list_images(ex_filters={"name": wanted}))
        else:
            try:
                return driver.get_image(wanted)
            except Exception:
                images = [i for i in driver.list_images() if wanted in (str(i.id), str(i.name))]
        if not images:
            raise NotFound(f"image {wanted!r} not found", hint="check the template's image")
        return sorted(images, key=lambda i: str((i.extra or {}).get("creation_date") or ""))[-1]

    def _location(self, wanted: str | None) -> Any:
        if wanted is None:
            return None
        locations = list(self._driver().list_locations())
        for location in locations:
            zone = getattr(getattr(location, "availability_zone", None), "name", None)
            if wanted in (str(location.id), str(location.name), zone):
                return location
        raise NotFound(
            f"location {wanted!r} not found",
            hint="check the template's location; the driver has: "
            f"{_some(loc.name for loc in locations)}",
        )

    def _subnet(self, subnet_id: str) -> Any:
        subnets = self._driver().ex_list_subnets(subnet_ids=[subnet_id])
        if not subnets:
            raise NotFound(f"subnet {subnet_id!r} not found", hint="check extra.ex_subnet")
        return subnets[0]

    def _raw_node(self, node_id: str) -> Any:
        driver = self._driver()
        if self.family == "ec2":
            from libcloud.common.exceptions import BaseHTTPError

            try:
                nodes = driver.list_nodes(ex_node_ids=[node_id])
            except BaseHTTPError as exc:
                if "InvalidInstanceID" in str(exc):
                    return None
                raise
        elif hasattr(driver, "ex_get_node"):
            try:
                return driver.ex_get_node(node_id)
            except Exception as exc:
                if _http_code(exc) == 404:
                    return None
                raise
        else:
            nodes = driver.list_nodes()
        return next((n for n in nodes if str(n.id) == node_id), None)

    # --- hooks ----------------------------------------------------------------------------

    def _create(self, spec: NodeSpec) -> Node:
        driver = self._driver()
        location = self._location(spec.location)
        size = self._size(spec.size, location)
        image = self._image(spec.image)
        kwargs = self._create_kwargs(spec)
        if location is not None:
            kwargs["location"] = location
        try:
            raw = driver.create_node(name=spec.name, size=size, image=image, **kwargs)
        except TypeError as exc:
            raise ProviderError(
                f"the libcloud {self.driver_name} driver's create_node does not take these "
                f"arguments: {exc}",
                hint="check the template's `extra` (and ssh_key) against the driver's create_node",
            ) from None
        if isinstance(raw, list):  # some drivers return a list for one node
            raw = raw[0]
        return self._node(raw)

    def _create_kwargs(self, spec: NodeSpec) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(spec.extra)
        family = self.family
        if spec.ssh_key is not None:
            if family not in SSH_KEY_ARGS:
                raise ProviderError(
                    f"the tool does not know how the {self.driver_name} driver takes an SSH key",
                    hint="remove ssh_key and put the key under the driver's own create_node "
                    "argument in `extra`",
                )
            arg, as_list = SSH_KEY_ARGS[family]
            kwargs[arg] = [spec.ssh_key] if as_list else spec.ssh_key
        if family == "ec2":
            kwargs["ex_clienttoken"] = client_token(spec.idempotency_key)
            kwargs["ex_metadata"] = {**kwargs.get("ex_metadata", {}), **spec.all_tags()}
            subnet = kwargs.get("ex_subnet")
            if isinstance(subnet, str):
                kwargs["ex_subnet"] = self._subnet(subnet)
        return kwargs

    def _get(self, node_id: str) -> Node | None:
        raw = self._raw_node(node_id)
        return None if raw is None else self._node(raw)

    def _find(self, name: str) -> list[Node]:
        driver = self._driver()
        if self.family == "ec2":
            raws = driver.list_nodes(ex_filters={"tag:Name": name})
        else:
            raws = driver.list_nodes()
        return [self._node(raw) for raw in raws if str(raw.name) == name]

    def _destroy(self, node_id: str) -> bool:
        raw = self._raw_node(node_id)
        if raw is None or str(raw.state) == "terminated":
            return False
        if self._driver().destroy_node(raw) is False:
            raise ProviderError(f"the provider did not delete server {node_id}")
        return True

    def _node(self, raw: Any) -> Node:
        self._raw[str(raw.id)] = raw
        extra = dict(raw.extra or {})
        tags = extra.get("tags") or {}
        return Node(
            id=str(raw.id),
            name=str(raw.name or ""),
            state=str(raw.state),
            public_ips=tuple(str(ip) for ip in (raw.public_ips or []) if ip),
            private_ips=tuple(str(ip) for ip in (raw.private_ips or []) if ip),
            tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
            extra=extra,
        )

    def _translate(self, exc: BaseException, action: str) -> FailoverError | None:
        from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
        from libcloud.common.types import InvalidCredsError, LibcloudError
        from libcloud.compute.types import KeyPairDoesNotExistError

        creds = self.config.key.source
        if self.config.secret is not None:
            creds += f" and {self.config.secret.source}"
        detail = _detail(exc)
        if isinstance(exc, InvalidCredsError):
            return AuthError(
                f"{action}: authentication failed: {detail}",
                hint=f"check the credentials ({creds})",
            )
        if type(exc).__name__ == "IdempotentParamError":  # ec2's; its module is heavy
            return ProviderError(
                f"{action}: a server was already requested with this run's key but other "
                f"parameters: {detail}",
                hint="the template changed during the run; finish or abandon the run first",
            )
        if isinstance(exc, KeyPairDoesNotExistError):
            return NotFound(
                f"{action}: SSH key not found: {detail}",
                hint="check the template's ssh_key: the key's name at the provider",
            )
        if isinstance(exc, RateLimitReachedError) or _RATE.search(detail):
            return RateLimited(
                f"{action}: rate limited by the API: {detail}", hint="try again later"
            )
        if isinstance(exc, BaseHTTPError):
            return _http_error(exc, action, detail, creds)
        transport = _transport_error(exc, action)
        if transport is not None:
            return transport
        if isinstance(exc, LibcloudError):
            return ProviderError(f"{action}: {detail}")
        return None


def _http_error(exc: BaseException, action: str, detail: str, creds: str) -> FailoverError:
    """An HTTP error from the API, by status code and message."""
    code = _http_code(exc)
    if code in (401, 403):
        return AuthError(
            f"{action}: access denied (HTTP {code}): {detail}",
            hint=f"check the credentials ({creds}) and their permissions",
        )
    if code == 429:
        return RateLimited(f"{action}: rate limited (HTTP 429)", hint="try again later")
    if _CAPACITY.search(detail):
        return ProviderError(
            f"{action}: the provider has no capacity for this size here: {detail}",
            hint="try another location or size, or try again later",
        )
    if _QUOTA.search(detail):
        return ProviderError(
            f"{action}: refused by the account's quota: {detail}",
            hint="delete servers you do not need, or ask the provider to raise the limit",
        )
    for pattern, what, hint in _NOT_FOUND:
        if pattern.search(detail) and re.search(
            r"NotFound|Invalid|not (?:found|exist)|"
            r"does not|unknown",
            detail,
            re.I,
        ):
            return NotFound(f"{action}: {what} not found: {detail}", hint=hint)
    if code == 404:
        return NotFound(f"{action}: not found (HTTP 404): {detail}")
    return ProviderError(f"{action}: HTTP {code}: {detail}")


def _transport_error(exc: BaseException, action: str) -> FailoverError | None:
    """The API could not be reached, or did not answer in time."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Unreachable(
            f"{action}: connecting to the API timed out", hint="is the API reachable from here?"
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Unreachable(
            f"{action}: cannot reach the API: {_root_cause(exc)}",
            hint="is the API up, and are args.host and args.port right?",
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return Unreachable(
            f"{action}: the API did not answer in time",
            hint="try again, or raise the template's timeout",
        )
    if isinstance(exc, ConnectionRefusedError):
        return Unreachable(f"{action}: connection refused")
    if isinstance(exc, OSError):
        return Unreachable(f"{action}: {one_line(exc)}")
    return None


def client_token(key: str) -> str:
    """EC2's client token for an idempotency key: the key itself when it fits (64 ASCII
    characters), else a digest of it."""
    if len(key) <= 64 and key.isascii() and key.isprintable():
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:64]


def _http_code(exc: BaseException) -> int:
    try:
        return int(getattr(exc, "code", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _detail(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or getattr(exc, "value", None) or str(exc)
    text = " ".join(str(text).split()) or exc.__class__.__name__
    return text[:297] + "..." if len(text) > 300 else text


def _some(names: Any, limit: int = 8) -> str:
    items = sorted({str(n) for n in names})
    if not items:
        return "(none)"
    more = f", ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _root_cause(exc: BaseException) -> str:
    if connection_refused(exc):
        return "connection refused"
    return one_line(exception_chain(exc)[-1])


__all__ = ["SSH_KEY_ARGS", "LibcloudComputeProvider", "client_token"]
