"""Real engines for the coordination contract: SeaweedFS's S3 (`weed mini`) with a bucket,
and a 3-member etcd cluster (Debian's etcd-server), each once per module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import TEST_AWS_ENV, require_binary
from tests.support.etcd_cluster import EtcdCluster
from tests.support.storage_servers import SeaweedFS, _weed_binary

BUCKET = "coordination"


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    import time

    deadline = time.monotonic() + 20
    while True:
        try:
            client.create_bucket(Bucket=name)
            return
        except client.exceptions.BucketAlreadyOwnedByYou:
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    _weed_binary()
    server = SeaweedFS(tmp_path_factory.mktemp("seaweed"))
    with server:
        make_bucket(server.endpoint, BUCKET)
        yield server


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    require_binary("etcd")
    with EtcdCluster(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


def s3_config(endpoint: str, **extra: Any) -> Any:
    from failover.config.coordination import S3Coordination

    return S3Coordination.model_validate(
        {
            "bucket": BUCKET,
            "prefix": f"t-{uuid.uuid4().hex[:8]}/",
            "endpoint_url": endpoint,
            "access_key_id": TEST_AWS_ENV["AWS_ACCESS_KEY_ID"],
            "secret_access_key": TEST_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            "timeout": "3s",
            **extra,
        }
    )


def etcd_config(endpoints: list[str], **extra: Any) -> Any:
    from failover.config.coordination import EtcdCoordination

    return EtcdCoordination.model_validate(
        {"endpoints": endpoints, "prefix": f"t-{uuid.uuid4().hex[:8]}/", "timeout": "2s", **extra}
    )


def tmpdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
