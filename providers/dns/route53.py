"""Amazon Route 53 through boto3 (imported only when a site uses it).

All the record sets of a change go out as UPSERTs in one change batch, which Route 53
applies atomically; `wait()` then polls GetChange until the change is INSYNC or the
deadline passes. Throttling (Throttling, PriorRequestNotComplete) is retried with
exponential backoff and jitter, up to `max_attempts`; botocore's own retries are off so
that an unreachable endpoint is reported at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from failover.dns.names import normalize_name
from failover.errors import (
    AuthError,
    FailoverError,
    NotFound,
    ProviderError,
    RateLimited,
    Unreachable,
)
from providers.dns.base import (
    Capabilities,
    DnsProvider,
    RecordChange,
    RecordKey,
    RecordSet,
    not_delivered,
    one_line,
)

THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "RequestLimitExceeded",
}
AUTH = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
    "MissingAuthenticationToken",
    "IncompleteSignature",
}


def with_backoff(
    call: Callable[[], Any],
    attempts: int,
    *,
    base: float = 0.2,
    cap: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Run `call`; when Route 53 throttles, retry with full-jitter exponential backoff."""
    from botocore.exceptions import ClientError

    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in THROTTLING or attempt >= attempts:
                raise
            sleep(random.uniform(0, min(cap, base * 2**attempt)))
    raise AssertionError("unreachable")


def _unescape(name: str) -> str:
    # Route 53 returns some characters as \ooo octal escapes (\052 for *).
    out, i = "", 0
    while i < len(name):
        if name[i] == "\\" and name[i + 1 : i + 4].isdigit():
            out += chr(int(name[i + 1 : i + 4], 8))
            i += 4
        else:
            out += name[i]
            i += 1
    return out


class Route53DnsProvider(DnsProvider):
    kind = "route53"
    capabilities = Capabilities(atomic=True, conditional=False, reports_sync=True)

    def __init__(self, name: str, config: Any) -> None:
        super().__init__(name, config)
        self._client_obj: Any = None
        self._zone_ids: dict[str, str] = {
            normalize_name(k): v.split("/")[-1] for k, v in config.hosted_zone_ids.items()
        }

    def describe(self) -> str:
        where = f" at {self.config.endpoint_url}" if self.config.endpoint_url else ""
        return f"route53{where}"

    # --- the private client ----------------------------------------------------------------

    def _client(self) -> Any:
        if self._client_obj is not None:
            return self._client_obj
        import boto3
        from botocore.config import Config

        c = self.config
        session_args: dict[str, Any] = {"region_name": c.region}
        if c.profile:
            session_args["profile_name"] = c.profile
        if c.access_key_id is not None:
            session_args["aws_access_key_id"] = self._secret(c.access_key_id.reveal())
            session_args["aws_secret_access_key"] = self._secret(c.secret_access_key.reveal())
        if c.session_token is not None:
            session_args["aws_session_token"] = self._secret(c.session_token.reveal())
        session = boto3.session.Session(**session_args)
        self._client_obj = session.client(
            "route53",
            endpoint_url=c.endpoint_url,
            config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=c.timeout,
                read_timeout=c.timeout,
            ),
        )
        return self._client_obj

    def _call(self, method: str, **kwargs: Any) -> Any:
        client = self._client()
        return with_backoff(lambda: getattr(client, method)(**kwargs), self.config.max_attempts)

    def _zone_id(self, zone: str) -> str:
        if zone in self._zone_ids:
            return self._zone_ids[zone]
        out = self._call("list_hosted_zones_by_name", DNSName=zone + ".", MaxItems="10")
        found = [z for z in out.get("HostedZones", []) if normalize_name(z["Name"]) == zone]
        if not found:
            raise NotFound(
                f"no hosted zone {zone} in this account",
                hint="check the site's dns.zone and the account's credentials",
            )
        if len(found) > 1:
            raise ProviderError(
                f"several hosted zones are named {zone}",
                hint=f"name the one to change in hosted_zone_ids: {{{zone}: ZONE_ID}}",
            )
        self._zone_ids[zone] = found[0]["Id"].split("/")[-1]
        return self._zone_ids[zone]

    # --- hooks ----------------------------------------------------------------------------

    def _read(self, key: RecordKey) -> RecordSet | None:
        out = self._call(
            "list_resource_record_sets",
            HostedZoneId=self._zone_id(key.zone),
            StartRecordName=key.name + ".",
            StartRecordType=key.rtype,
            MaxItems="1",
        )
        for rrset in out.get("ResourceRecordSets", []):
            if normalize_name(_unescape(rrset["Name"])) != key.name or rrset["Type"] != key.rtype:
                continue
            if "AliasTarget" in rrset:
                target = normalize_name(rrset["AliasTarget"].get("DNSName", "?"))
                return RecordSet(key, (f"alias:{target}",), None)
            values = tuple(r["Value"] for r in rrset.get("ResourceRecords", []))
            return RecordSet(key, values, rrset.get("TTL"))
        return None

    def _apply(self, changes: Sequence[RecordChange]) -> Any:
        zones = {change.key.zone for change in changes}
        if len(zones) != 1:
            raise ProviderError("one change batch can touch one hosted zone only")
        zone_id = self._zone_id(zones.pop())
        batch = {
            "Comment": "failover: switch DNS",
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": change.key.name + ".",
                        "Type": change.key.rtype,
                        "TTL": change.new.ttl or 300,
                        "ResourceRecords": [{"Value": v} for v in _data(change.new)],
                    },
                }
                for change in changes
            ],
        }
        self._mark_sent()
        out = self._call("change_resource_record_sets", HostedZoneId=zone_id, ChangeBatch=batch)
        return out["ChangeInfo"]["Id"]

    def _wait(self, handle: Any, deadline: float) -> None:
        if handle is None:
            return
        delay = 0.05
        while True:
            out = self._call("get_change", Id=handle)
            status = out["ChangeInfo"]["Status"]
            if status == "INSYNC":
                return
            if time.monotonic() >= deadline:
                raise ProviderError(
                    f"the change {handle} is still {status} at the deadline",
                    hint="Route 53 applied it but has not reported it in sync yet",
                )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)

    def _translate(self, exc: BaseException, action: str) -> FailoverError | None:
        from botocore import exceptions as bx

        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code", "") or ""
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = " ".join(str(error.get("Message", "")).split())[:200]
            if code in AUTH or (not code and status in (401, 403)):
                return not_delivered(
                    AuthError(
                        f"{action}: authentication failed ({code or status})",
                        hint="check access_key_id/secret_access_key or the profile, and the "
                        "IAM policy (route53:ChangeResourceRecordSets, ListResourceRecordSets, "
                        "ListHostedZonesByName, GetChange)",
                    )
                )
            if code in ("NoSuchHostedZone", "NoSuchChange", "HostedZoneNotFound"):
                return not_delivered(
                    NotFound(f"{action}: {code}: {message}", hint="check the site's dns.zone")
                )
            if code in THROTTLING:
                return not_delivered(
                    RateLimited(
                        f"{action}: still throttled after {self.config.max_attempts} attempts",
                        hint="Route 53 allows 5 requests per second per account; try again",
                    )
                )
            if code in ("InvalidChangeBatch", "InvalidInput"):
                # Route 53 applies a batch whole or not at all, but the outcome is read back
                # rather than assumed (an emulator may not be atomic).
                return ProviderError(f"{action}: {code}: {message}")
            return ProviderError(f"{action}: {code or status}: {message}")
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return not_delivered(
                AuthError(
                    f"{action}: no AWS credentials",
                    hint="set access_key_id/secret_access_key or profile in the provider",
                )
            )
        if isinstance(exc, bx.ProfileNotFound):
            return not_delivered(
                AuthError(f"{action}: {one_line(exc)}", hint="check `profile` in the provider")
            )
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
            return not_delivered(
                Unreachable(
                    f"{action}: cannot connect to the Route 53 API",
                    hint="check the network and endpoint_url",
                )
            )
        if isinstance(exc, bx.ReadTimeoutError):
            return Unreachable(f"{action}: the Route 53 API did not answer in time")
        if isinstance(exc, (bx.ConnectionClosedError, bx.HTTPClientError)):
            return Unreachable(f"{action}: the connection to the Route 53 API failed")
        if isinstance(exc, bx.BotoCoreError):
            return ProviderError(f"{action}: {one_line(exc)}")
        if isinstance(exc, OSError):
            return Unreachable(f"{action}: {one_line(exc)}")
        return None


def _data(recordset: RecordSet) -> list[str]:
    if recordset.key.rtype == "CNAME":
        return [v.rstrip(".") + "." for v in recordset.values]
    return list(recordset.values)
