"""Coordination through an S3 bucket with conditional writes (boto3, imported only here).

`If-None-Match: *` creates a key only if it is absent; `If-Match: <etag>` replaces it only
if it is unchanged. A lost condition answers 412 (and, for If-Match on a missing key, 404
on AWS and moto, 412 on SeaweedFS); a conflicting concurrent conditional write may answer
409: all of them mean "lost". Used this way by Terraform's `use_lockfile`, delta-rs and
SlateDB. Some S3 servers ignore the headers: `selftest()` finds out.

The leader's lease is one object (`leader`): the holder renews it by compare-and-swap; a
follower takes it over (compare-and-swap, epoch + 1) only after seeing it unchanged for
its TTL, on its own clock or by the age the server gives it (Date minus Last-Modified,
both the server's clock). Every write carries a nonce: identical bodies would give
identical ETags.

botocore exposes IfNoneMatch from 1.35.2 and IfMatch from 1.35.69 on PutObject; with an
older botocore the headers are added through its `before-sign` event instead.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from email.utils import parsedate_to_datetime
from typing import Any

from failover.coordination.lease import LeaderSeen, Lease, may_take_over, observe_leader
from failover.errors import AuthError, FailoverError, NotFound, ProviderError, Unreachable
from providers.common import connection_refused
from providers.coordination.base import MAX_DOCUMENT, Coordinator, Item, LeaderInfo, decode, encode

LOST = {"PreconditionFailed", "NoSuchKey", "ConditionalRequestConflict", "412", "404", "409"}
AUTH = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


class S3Coordinator(Coordinator):
    kind = "s3"

    def __init__(self, config: Any, clock: Any = None, native_conditions: bool | None = None):
        super().__init__(config, **({"clock": clock} if clock else {}))
        self.bucket = config.bucket
        self._native = self._native_arg = native_conditions
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending = threading.local()  # conditional headers for the event hook
        self._lock = threading.Lock()

    def _clone(self, config: Any) -> Coordinator:
        return S3Coordinator(config, clock=self.clock, native_conditions=self._native_arg)

    def describe(self) -> str:
        where = self.config.endpoint_url or "AWS"
        return f"s3://{self.bucket}/{self.prefix} at {where}"

    # --- the client ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        c = self.config
        kwargs: dict[str, Any] = {"region_name": c.region}
        if c.endpoint_url:
            kwargs["endpoint_url"] = c.endpoint_url
        if c.access_key_id is not None:
            kwargs["aws_access_key_id"] = self._secret(c.access_key_id.reveal())
        if c.secret_access_key is not None:
            kwargs["aws_secret_access_key"] = self._secret(c.secret_access_key.reveal())
        client = boto3.session.Session().client(
            "s3",
            config=BotoConfig(
                connect_timeout=c.timeout,
                read_timeout=c.timeout,
                # A retried conditional write that had landed would then "lose" to itself:
                # no retries; the next round tries again.
                retries={"total_max_attempts": 1},
                s3={"addressing_style": c.addressing_style},
                max_pool_connections=32,
            ),
            **kwargs,
        )
        members = client.meta.service_model.operation_model("PutObject").input_shape.members
        if self._native is None:
            self._native = "IfNoneMatch" in members and "IfMatch" in members
        if not self._native:
            client.meta.events.register("before-sign.s3.PutObject", self._add_conditions)
        return client

    def _add_conditions(self, request: Any, **_kw: Any) -> None:
        for name, value in getattr(self._pending, "headers", {}).items():
            request.headers[name] = value

    def _put_object(self, key: str, body: bytes, **conditions: str) -> Any:
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.prefix + key,
            "Body": body,
            "ContentType": "application/json",
        }
        client = self.client
        if self._native:
            kwargs.update(conditions)
            return client.put_object(**kwargs)
        names = {"IfNoneMatch": "If-None-Match", "IfMatch": "If-Match"}
        self._pending.headers = {names[k]: v for k, v in conditions.items()}
        try:
            return client.put_object(**kwargs)
        finally:
            self._pending.headers = {}

    # --- key-value ------------------------------------------------------------------------------

    def _get(self, key: str) -> Item | None:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        body = resp["Body"]
        try:
            data = body.read(MAX_DOCUMENT + 1)
        finally:
            body.close()
        return Item(key, decode(data, key), resp["ETag"], _age(resp))

    def _get_many(self, keys: Sequence[str]) -> dict[str, Item | None]:
        if len(keys) <= 1:
            return {k: self._get(k) for k in keys}
        if self._pool is None:
            self._pool = ThreadPoolExecutor(8, thread_name_prefix="s3-coordination")
        return dict(zip(keys, self._pool.map(self._get, keys), strict=True))

    def _put(self, key: str, value: dict[str, Any]) -> Item:
        resp = self._put_object(key, encode(value))
        return Item(key, value, resp["ETag"])

    def _create(self, key: str, value: dict[str, Any]) -> Item | None:
        try:
            resp = self._put_object(key, encode(value), IfNoneMatch="*")
        except Exception as exc:
            if _code(exc) in LOST:
                return None
            raise
        return Item(key, value, resp["ETag"])

    def _replace(self, key: str, value: dict[str, Any], version: str) -> Item | None:
        try:
            resp = self._put_object(key, encode(value), IfMatch=version)
        except Exception as exc:
            if _code(exc) in LOST:
                return None
            raise
        return Item(key, value, resp["ETag"])

    def _delete(self, key: str, version: str | None) -> bool:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + key}
        if version is not None:
            kwargs["IfMatch"] = version
        try:
            self.client.delete_object(**kwargs)
        except Exception as exc:
            if _code(exc) in LOST:
                return False
            raise
        return True

    def _keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        token: str | None = None
        for _ in range(100):  # at most 100,000 keys: ours are a handful
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
            if token:
                kwargs["ContinuationToken"] = token
            resp = self.client.list_objects_v2(**kwargs)
            out += [o["Key"][len(self.prefix) :] for o in resp.get("Contents", [])]
            token = resp.get("NextContinuationToken")
            if not token:
                break
        return out

    # --- leadership -------------------------------------------------------------------------

    def _campaign(
        self, me: str, ttl: float, margin: float, memory: dict[str, Any], may_act: bool
    ) -> tuple[Lease | None, LeaderInfo]:
        item = self._get(self.LEADER_KEY)
        if item is None:
            memory.pop("leader", None)
            if not may_act:
                return None, LeaderInfo(None, 0)
            sent_at = self.clock()
            created = self._create(self.LEADER_KEY, _lease_doc(me, 1, ttl))
            if created is None:
                return None, LeaderInfo(None, 0)  # another won: seen next round
            return Lease(me, 1, created.version, ttl, margin, sent_at), LeaderInfo(me, 1)
        holder = item.value.get("holder")
        epoch = int(item.value.get("epoch") or 0)
        record_ttl = float(item.value.get("ttl") or ttl)
        prev = LeaderSeen(**memory["leader"]) if memory.get("leader") else None
        seen = observe_leader(prev, item.version, holder, epoch, self.clock(), item.age)
        memory["leader"] = asdict(seen)
        info = LeaderInfo(holder, epoch)
        if not may_act or not may_take_over(seen, self.clock(), max(record_ttl, ttl)):
            return None, info
        sent_at = self.clock()
        won = self._replace(self.LEADER_KEY, _lease_doc(me, epoch + 1, ttl), item.version)
        if won is None:
            return None, info
        memory.pop("leader", None)
        return Lease(me, epoch + 1, won.version, ttl, margin, sent_at), LeaderInfo(me, epoch + 1)

    def _renew(self, lease: Lease) -> Lease | None:
        sent_at = self.clock()
        won = self._replace(
            self.LEADER_KEY, _lease_doc(lease.holder, lease.epoch, lease.ttl), lease.token
        )
        return None if won is None else lease.renewed(won.version, sent_at)

    def _resign(self, lease: Lease) -> None:
        self._replace(self.LEADER_KEY, _lease_doc(None, lease.epoch, lease.ttl), lease.token)

    # S3 cannot condition one object on another: a group fact is written only while the
    # lease is valid on this side, and its own ETag fences it against a newer leader's write.
    def _create_fenced(self, lease: Lease, key: str, value: dict[str, Any]) -> Item | None:
        if not lease.valid(self.clock()):
            return None
        return self._create(key, value)

    def _replace_fenced(
        self, lease: Lease, key: str, value: dict[str, Any], version: str
    ) -> Item | None:
        if not lease.valid(self.clock()):
            return None
        return self._replace(key, value, version)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # --- errors -------------------------------------------------------------------------------

    def _translate(self, exc: BaseException, action: str) -> FailoverError | None:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        if isinstance(exc, NoCredentialsError):
            return AuthError(
                "no credentials", hint="set coordination.s3.access_key_id and secret_access_key"
            )
        if isinstance(
            exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)
        ) or connection_refused(exc):
            return Unreachable(f"no answer ({exc.__class__.__name__})")
        if isinstance(exc, ClientError):
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message") or code
            if code in AUTH:
                return AuthError(f"{code}: {message}", hint="check the keys and the bucket policy")
            if code == "NoSuchBucket":
                return NotFound(f"the bucket {self.bucket} does not exist")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status and int(status) >= 500:
                return Unreachable(f"the server failed: {status} {code}")
            return ProviderError(f"{code}: {message}")
        return None


def _lease_doc(holder: str | None, epoch: int, ttl: float) -> dict[str, Any]:
    return {"holder": holder, "epoch": epoch, "ttl": ttl, "nonce": uuid.uuid4().hex}


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = str(response.get("Error", {}).get("Code") or "")
    return code or str(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")


def _age(resp: dict[str, Any]) -> float | None:
    """Date minus Last-Modified: the write's age by the server's own clock."""
    try:
        date = resp["ResponseMetadata"]["HTTPHeaders"]["date"]
        modified = resp["LastModified"]
        return max(0.0, (parsedate_to_datetime(date) - modified).total_seconds())
    except (KeyError, TypeError, ValueError):
        return None
