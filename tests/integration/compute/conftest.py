"""Fixtures for the compute tests: moto's EC2 in server mode on 127.0.0.1 (see moto_ec2.py),
reached through libcloud's EC2 driver and the test-only shim in ec2_shim.py.

- `moto_server`: one moto server for the module.
- `ec2_lab`: that server, reset, with a VPC and a subnet 10.213.200.0/24 made by the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.compute.moto_ec2 import Ec2Lab, Ec2MotoServer, make_subnet, some_image


@pytest.fixture(scope="module")
def moto_server() -> Iterator[Ec2MotoServer]:
    with Ec2MotoServer() as moto:
        yield moto


@pytest.fixture
def ec2_lab(moto_server: Ec2MotoServer) -> Ec2Lab:
    moto_server.reset()
    vpc, subnet = make_subnet(moto_server)
    return Ec2Lab(moto_server, subnet, some_image(moto_server), vpc, moto_server.port)
