"""Provisioning through libcloud's compute API against moto's EC2 in server mode.

The servers moto "creates" get private addresses from a subnet the test made, which is
what a test of the whole migrate needs: it puts a network-namespace host with sshd at that
address. moto's fake public addresses are never contacted.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from failover.config.models import Endpoint
from failover.errors import (
    AuthError,
    NotFound,
    ProviderError,
    RateLimited,
    Unreachable,
    UsageError,
)
from failover.runs import compute
from providers.compute.base import RUN_TAG, SITE_TAG
from tests.integration.compute.moto_ec2 import (
    Ec2Lab,
    Ec2MotoServer,
    RefusingProxy,
    first_address,
    make_subnet,
    some_image,
)
from tests.support import TEST_AWS_ENV

pytestmark = pytest.mark.integration


def _tags(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def test_create_runs_with_a_private_address_from_the_chosen_subnet(
    ec2_lab: Ec2Lab, tmp_path: Path
) -> None:
    loaded = ec2_lab.load(tmp_path)
    said: list[str] = []
    created: list[str] = []

    node = compute.provision(
        loaded, "small", "shop", "run-41", said.append, on_created=lambda n: created.append(n.id)
    )

    assert node.running
    assert node.name == "failover-shop"
    address = node.private_ips[0]
    assert ipaddress.ip_address(address) in ipaddress.ip_network("10.213.200.0/24")
    assert created == [node.id]
    assert any("created server failover-shop" in line for line in said)
    assert said[-1] == f"server failover-shop ({node.id}) is running at {address}"

    # moto's own view: one instance, in our subnet, with the run's tags, the key pair and
    # the template's size and image.
    (instance,) = ec2_lab.instances()
    assert instance["InstanceId"] == node.id
    assert instance["SubnetId"] == ec2_lab.subnet_id
    assert instance["PrivateIpAddress"] == address
    assert instance["KeyName"] == "failover"
    assert instance["InstanceType"] == "t3.micro"
    assert instance["ImageId"] == ec2_lab.image_id
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1a"
    tags = _tags(instance)
    assert tags["Name"] == "failover-shop"
    assert tags[RUN_TAG] == "run-41"
    assert tags[SITE_TAG] == "shop"
    assert tags["owner"] == "tests"

    block = compute.endpoint_block(loaded.config.compute_templates["small"], node, "small")
    assert block["address"] == address
    assert block["ssh"] == {"user": "root", "port": 22, "key": "/etc/failover/id_ed25519"}
    assert Endpoint.model_validate(block).address == address


def test_the_test_picks_the_subnet_and_reads_back_the_private_address(
    moto_server: Ec2MotoServer, tmp_path: Path
) -> None:
    moto_server.reset()
    vpc, subnet = make_subnet(moto_server, "10.77.5.0/24")
    lab = Ec2Lab(moto_server, subnet, some_image(moto_server), vpc, moto_server.port)
    node = compute.provision(lab.load(tmp_path), "small", "shop", "run-cidr")
    assert ipaddress.ip_address(node.private_ips[0]) in ipaddress.ip_network("10.77.5.0/24")
    assert [i["PrivateIpAddress"] for i in lab.instances()] == [node.private_ips[0]]
    # Known before the server exists, so that a test can put a namespace host there first.
    assert node.private_ips[0] == first_address("10.77.5.0/24") == "10.77.5.4"


def test_a_second_provision_with_the_same_key_returns_the_same_server(
    ec2_lab: Ec2Lab, tmp_path: Path
) -> None:
    loaded = ec2_lab.load(tmp_path)
    first = compute.provision(loaded, "small", "shop", "run-7")
    said: list[str] = []
    again = compute.provision(loaded, "small", "shop", "run-7", said.append)
    assert again.id == first.id
    assert any("resuming with server" in line for line in said)
    assert not any("creating server" in line for line in said)
    assert [i["InstanceId"] for i in ec2_lab.instances()] == [first.id]

    # By the journaled id as well.
    by_id = compute.provision(loaded, "small", "shop", "run-7", node_id=first.id)
    assert by_id.id == first.id
    assert len(ec2_lab.instances()) == 1

    # Another run (another key) is another server, even with the same name.
    other = compute.provision(loaded, "small", "shop", "run-8")
    assert other.id != first.id
    assert len(ec2_lab.instances()) == 2


def test_killed_after_create_then_run_again_finds_the_server(
    ec2_lab: Ec2Lab, tmp_path: Path
) -> None:
    """The process dies after RunInstances went out and before anything was journaled:
    the re-run finds the server by its name and run tag instead of creating another."""
    loaded = ec2_lab.load(tmp_path)
    template = loaded.config.compute_templates["small"]
    with compute.provider_for_template(loaded, "small") as provider:
        created = provider.create_node(compute.node_spec(template, "shop", "run-crash"))
    assert created.state == "pending"

    node = compute.provision(loaded, "small", "shop", "run-crash")
    assert node.id == created.id
    assert node.running
    assert [i["InstanceId"] for i in ec2_lab.instances()] == [created.id]


def test_find_nodes_sees_only_live_servers_of_that_name_and_run(
    ec2_lab: Ec2Lab, tmp_path: Path
) -> None:
    loaded = ec2_lab.load(tmp_path)
    a = compute.provision(loaded, "small", "shop", "run-a")
    b = compute.provision(loaded, "small", "shop", "run-b")
    with compute.provider_for_template(loaded, "small") as provider:
        assert {n.id for n in provider.find_nodes("failover-shop")} == {a.id, b.id}
        assert [n.id for n in provider.find_nodes("failover-shop", "run-b")] == [b.id]
        assert provider.find_nodes("failover-other") == []
        provider.destroy_node(a.id)
        assert [n.id for n in provider.find_nodes("failover-shop")] == [b.id]


def test_destroy_deletes_and_is_harmless_when_repeated(ec2_lab: Ec2Lab, tmp_path: Path) -> None:
    loaded = ec2_lab.load(tmp_path)
    node = compute.provision(loaded, "small", "shop", "run-d")
    said: list[str] = []
    assert compute.destroy(loaded, "small", node.id, said.append) is True
    assert said == [f"deleted server {node.id}"]
    assert ec2_lab.instances() == []
    (gone,) = ec2_lab.instances(("terminated", "shutting-down"))
    assert gone["InstanceId"] == node.id
    assert compute.destroy(loaded, "small", node.id) is False
    assert compute.destroy(loaded, "small", "i-0123456789abcdef0") is False

    # A resumed run whose journaled server was deleted does not silently make another.
    with pytest.raises(ProviderError, match="is gone"):
        compute.provision(loaded, "small", "shop", "run-d", node_id=node.id)
    assert ec2_lab.instances() == []


def test_waiting_for_a_public_address_that_never_comes_times_out(
    ec2_lab: Ec2Lab, tmp_path: Path
) -> None:
    """The subnet gives no public addresses: `address: public` times out, names the server
    it left running, and destroy() cleans it up (what --destroy-on-failure does)."""
    loaded = ec2_lab.load(tmp_path, address="public", boot_timeout="1s")
    created: list[str] = []
    with pytest.raises(ProviderError) as err:
        compute.provision(
            loaded, "small", "shop", "run-pub", on_created=lambda n: created.append(n.id)
        )
    message = str(err.value)
    assert "has no public address after 1s" in message
    assert created and created[0] in message
    assert "\n" not in message
    assert compute.destroy(loaded, "small", created[0]) is True
    assert ec2_lab.instances() == []


def test_bad_credentials_are_an_auth_error(tmp_path: Path) -> None:
    with Ec2MotoServer(auth=True) as moto:
        lab = Ec2Lab(
            moto,
            "subnet-0123456789abcdef0",
            "ami-12c6146b",
            "vpc-0",
            moto.port,
            env={
                "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1",
                "AWS_SECRET_ACCESS_KEY": "wrong-secret-value-123",
            },
        )
        loaded = lab.load(tmp_path)
        with pytest.raises(AuthError) as err:
            compute.provision(loaded, "small", "shop", "run-auth")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("compute template small (libcloud ")
    assert "authentication failed" in message
    assert "AuthFailure" in message
    assert "${AWS_ACCESS_KEY_ID}" in message  # the hint names the references ...
    assert "AKIAWRONGWRONGWRONG1" not in message  # ... never the values
    assert "wrong-secret-value-123" not in message


@pytest.mark.parametrize(
    ("override", "what"),
    [
        ({"image": "ami-0000000000000dead"}, "image"),
        ({"size": "no-such-size"}, "size"),
        ({"location": "us-east-1z"}, "location"),
        ({"extra": {"ex_subnet": "subnet-00000000000000dea"}}, "subnet"),
    ],
)
def test_unknown_image_size_location_or_subnet_is_not_found(
    ec2_lab: Ec2Lab, tmp_path: Path, override: dict, what: str
) -> None:
    loaded = ec2_lab.load(tmp_path, **override)
    with pytest.raises(NotFound) as err:
        compute.provision(loaded, "small", "shop", "run-nf")
    message = str(err.value)
    assert f"{what} not found" in message or f"{what} '" in message, message
    assert "\n" not in message
    assert ec2_lab.instances() == []  # nothing half-made


def test_quota_refusal_is_a_provider_error_and_creates_nothing(
    ec2_lab: Ec2Lab, tmp_path: Path
) -> None:
    refuse = {
        "RunInstances": (
            400,
            "InstanceLimitExceeded",
            "Your quota allows for 0 more running instance(s). You requested at least 1",
        )
    }
    with RefusingProxy(ec2_lab.port, refuse) as proxy:
        ec2_lab.port = proxy.port
        loaded = ec2_lab.load(tmp_path)
        with pytest.raises(ProviderError) as err:
            compute.provision(loaded, "small", "shop", "run-quota")
    assert proxy.refused == ["RunInstances"]
    assert type(err.value) is ProviderError
    message = str(err.value)
    assert "refused by the account's quota" in message
    assert "InstanceLimitExceeded" in message
    assert "raise the limit" in message  # the hint
    assert "\n" not in message
    assert ec2_lab.instances() == []


def test_rate_limit_is_rate_limited(ec2_lab: Ec2Lab, tmp_path: Path) -> None:
    refuse = {"DescribeInstances": (503, "RequestLimitExceeded", "Request limit exceeded.")}
    with RefusingProxy(ec2_lab.port, refuse) as proxy:
        ec2_lab.port = proxy.port
        loaded = ec2_lab.load(tmp_path)
        with pytest.raises(RateLimited, match="rate limited"):
            compute.provision(loaded, "small", "shop", "run-rate")


def test_api_down_is_unreachable(tmp_path: Path) -> None:
    with Ec2MotoServer() as moto:
        vpc, subnet = make_subnet(moto)
        lab = Ec2Lab(moto, subnet, some_image(moto), vpc, moto.port)
        loaded = lab.load(tmp_path)
        node = compute.provision(loaded, "small", "shop", "run-down")
        moto.stop()
        with pytest.raises(Unreachable) as err:
            compute.provision(loaded, "small", "shop", "run-down")
        assert "connection refused" in str(err.value)
        with pytest.raises(Unreachable):
            compute.destroy(loaded, "small", node.id)


def test_unknown_template_and_driver(ec2_lab: Ec2Lab, tmp_path: Path) -> None:
    loaded = ec2_lab.load(tmp_path)
    with pytest.raises(UsageError, match=r"no compute template 'big'.*small"):
        compute.provision(loaded, "big", "shop", "run-x")
    loaded = ec2_lab.load(tmp_path, driver="nosuchcloud")
    with pytest.raises(ProviderError, match="libcloud has no compute driver 'nosuchcloud'"):
        compute.provision(loaded, "small", "shop", "run-x")
    loaded = ec2_lab.load(tmp_path, args={"region": "mars-north-1"})
    with pytest.raises(ProviderError, match="refused its arguments"):
        compute.provision(loaded, "small", "shop", "run-x")
    assert ec2_lab.instances() == []


PROVISION_SCRIPT = """
import sys
from failover.runs import compute
from failover.config.load import load_config

loaded = load_config(sys.argv[1])
compute.provision(loaded, "small", "shop", "run-killed", lambda m: print(m, flush=True))
"""


def test_process_killed_while_waiting_then_run_again_resumes(
    ec2_lab: Ec2Lab, tmp_path: Path
) -> None:
    """A real process is SIGKILLed while it waits for the server it created (the wait never
    ends: `address: public` in a subnet without public addresses); the re-run finds that
    server and creates none."""
    ec2_lab.load(tmp_path, address="public", boot_timeout="1h", poll_interval="0.2s")
    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, **TEST_AWS_ENV, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(
        [sys.executable, "-c", PROVISION_SCRIPT, str(tmp_path / "failover.yaml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("waiting up to"):
                break
        assert any(line.startswith("created server failover-shop") for line in lines), lines
        time.sleep(0.5)  # well inside the wait
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    (before,) = ec2_lab.instances()

    said: list[str] = []
    loaded = ec2_lab.load(tmp_path)  # the same template, now with the private address
    node = compute.provision(loaded, "small", "shop", "run-killed", said.append)
    assert node.id == before["InstanceId"]
    assert any("created earlier by this run" in line for line in said)
    assert [i["InstanceId"] for i in ec2_lab.instances()] == [node.id]
