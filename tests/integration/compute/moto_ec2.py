"""Helpers for tests that provision servers (the compute tests, and migrate tests): moto's
EC2 in server mode on 127.0.0.1, reached through libcloud's EC2 driver and the test-only
shim in ec2_shim.py.

- `Ec2MotoServer`: moto's server mode for EC2 (optionally with credential checks).
- `make_subnet()`: a VPC and subnet of a CIDR the test picks (10.213.200.0/24 by default),
  made through boto3 as a person would in the cloud console. Servers created in a fresh
  subnet get its addresses in order from network+4 (moto's, like EC2's, first four are
  reserved), so a test knows the first server's address before it exists, and can put a
  network-namespace host with sshd there.
- `Ec2Lab.load()`: a config file with a compute template pointing at that moto server.
- `RefusingProxy`: a real HTTP server in front of moto that answers chosen EC2 actions with
  an EC2 error (InstanceLimitExceeded, RequestLimitExceeded), which moto never does on its
  own, and forwards everything else.

moto hands out fake public addresses (54.x): no test ever connects to them; nothing here
reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import http.client
import http.server
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from failover.config.load import LoadedConfig, parse_config
from tests.integration.compute.ec2_shim import DRIVER
from tests.support import TEST_AWS_ENV, free_port
from tests.support.dns_servers import MotoServer
from tests.support.web import BackgroundServer, relay

REGION = "us-east-1"
ZONE = "us-east-1a"
SUBNET = "10.213.200.0/24"


class Ec2MotoServer(MotoServer):
    """moto's server mode (tests.support's MotoServer) used for EC2. With `auth`, moto
    checks credentials (INITIAL_NO_AUTH_ACTION_COUNT=0): unknown access keys are refused
    with AuthFailure, as EC2 does."""

    def __init__(self, auth: bool = False) -> None:
        super().__init__(records={})
        self.auth = auth
        self.image_id: str | None = None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        if self.auth:
            env = {**(env or os.environ), "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
        super()._spawn(argv, env)

    def _create_zone(self) -> None:
        self.zone_id = "none"  # EC2 only: no Route 53 hosted zone

    def __enter__(self) -> Ec2MotoServer:
        super().__enter__()
        return self

    def reset(self) -> None:
        req = urllib.request.Request(self.endpoint_url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass

    def ec2(self) -> Any:
        import boto3

        return boto3.client(
            "ec2",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )


@dataclass
class Ec2Lab:
    """moto with a VPC and subnet, and what a config file needs to use it."""

    moto: Ec2MotoServer
    subnet_id: str
    image_id: str
    vpc_id: str
    port: int
    env: dict[str, str] = field(default_factory=dict)

    def template(self, **overrides: Any) -> dict[str, Any]:
        template: dict[str, Any] = {
            "driver": DRIVER,
            "key": "${AWS_ACCESS_KEY_ID}",
            "secret": "${AWS_SECRET_ACCESS_KEY}",
            "args": {"region": REGION, "host": "127.0.0.1", "port": self.port, "secure": False},
            "timeout": "5s",
            "location": ZONE,
            "size": "t3.micro",
            "image": self.image_id,
            "ssh_key": "failover",
            "extra": {"ex_subnet": self.subnet_id},
            "address": "private",
            "ssh": {"user": "root", "key": "/etc/failover/id_ed25519"},
            "boot_timeout": "20s",
            "ssh_timeout": "2s",
            "poll_interval": "0.2s",
            "tags": {"owner": "tests"},
        }
        template.update(overrides)
        return template

    def config(self, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
        return {
            "state": str(tmp_path / "state.db"),
            "compute_templates": {"small": self.template(**overrides)},
            "sites": {
                "shop": {
                    "hostname": "shop.example.com",
                    "endpoints": {"primary": {"address": "192.0.2.10"}},
                    "checks": [{"type": "tcp", "port": 80}],
                }
            },
        }

    def load(self, tmp_path: Path, **overrides: Any) -> LoadedConfig:
        path = tmp_path / "failover.yaml"
        path.write_text(yaml.safe_dump(self.config(tmp_path, **overrides), sort_keys=False))
        path.chmod(0o600)
        env = {**os.environ, **TEST_AWS_ENV, **self.env}
        return parse_config(path.read_text(), str(path), base_dir=tmp_path, env=env)

    def instances(self, states: tuple[str, ...] = ("pending", "running")) -> list[dict[str, Any]]:
        """The instances moto holds in those states (moto's own view, through boto3)."""
        out = self.moto.ec2().describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": list(states)}]
        )
        return [i for r in out["Reservations"] for i in r["Instances"]]


def make_subnet(moto: Ec2MotoServer, cidr: str = SUBNET) -> tuple[str, str]:
    """A VPC holding `cidr` and a subnet of that CIDR in us-east-1a: (vpc_id, subnet_id)."""
    import ipaddress

    ec2 = moto.ec2()
    network = ipaddress.ip_network(cidr)
    vpc_cidr = network.supernet(new_prefix=16) if network.prefixlen > 16 else network
    vpc = ec2.create_vpc(CidrBlock=str(vpc_cidr))["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=ZONE)
    return vpc, subnet["Subnet"]["SubnetId"]


def first_address(cidr: str) -> str:
    """The private address the first server created in a fresh subnet of `cidr` gets."""
    import ipaddress

    return str(ipaddress.ip_network(cidr).network_address + 4)


def some_image(moto: Ec2MotoServer) -> str:
    """One of the AMIs moto always has (the same after every reset)."""
    if moto.image_id is None:
        images = moto.ec2().describe_images(Owners=["amazon"])["Images"]
        moto.image_id = str(sorted(i["ImageId"] for i in images)[0])
    return moto.image_id


class RefusingProxy(BackgroundServer):
    """An HTTP server in front of moto: requests for the EC2 actions in `refuse` get that
    EC2 error (HTTP status, code, message); everything else is forwarded to moto."""

    def __init__(self, target_port: int, refuse: dict[str, tuple[int, str, str]]) -> None:
        self.target_port = target_port
        self.refuse = refuse
        self.port = free_port()
        self.refused: list[str] = []

    def handler(self) -> Any:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = urllib.parse.urlsplit(self.path).query
                params = urllib.parse.parse_qs(query)
                if body and "x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
                    params.update(urllib.parse.parse_qs(body.decode()))
                action = (params.get("Action") or [""])[0]
                if action in proxy.refuse:
                    proxy.refused.append(action)
                    status, code, message = proxy.refuse[action]
                    data = (
                        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                        "<RequestID>proxy</RequestID></Response>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "text/xml;charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                relay(self, "127.0.0.1", proxy.target_port, body)

            do_GET = do_POST = _any

        return Handler
