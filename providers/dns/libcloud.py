"""Any DNS host that Apache Libcloud has a driver for.

libcloud is imported only when a site uses this provider. Libcloud models one record per
value; a record set is all the records of one name and type. Replacing one with a single
value updates the existing record in place; anything else deletes and creates records one
by one, which is not atomic (`capabilities.atomic` is False).

PowerDNS gets one exception: its API replaces whole record sets, so all the record sets of
a change go out in one PATCH through the driver's own connection, atomically (PowerDNS
applies a PATCH in one backend transaction). Its driver's quirks are handled here: names
carry the trailing dot, `api_version` defaults to v1, the TTL goes in `extra`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
from providers.common import connection_refused, exception_chain, libcloud_driver
from providers.dns.base import (
    Capabilities,
    DnsProvider,
    RecordChange,
    RecordKey,
    RecordSet,
    not_delivered,
    one_line,
)


class LibcloudDnsProvider(DnsProvider):
    kind = "libcloud"
    capabilities = Capabilities(atomic=False, conditional=False, reports_sync=False)

    def __init__(self, name: str, config: Any) -> None:
        super().__init__(name, config)
        self.driver_name: str = config.driver
        self.record_names: str = config.record_names or (
            "fqdn." if self.driver_name == "powerdns" else "relative"
        )
        if self.driver_name == "powerdns":
            # One PATCH per change, applied by PowerDNS in one transaction.
            self.capabilities = Capabilities(atomic=True, conditional=False, reports_sync=False)
        self._driver_obj: Any = None
        self._zones: dict[str, Any] = {}

    def describe(self) -> str:
        where = ""
        host = self.config.args.get("host")
        if host:
            port = self.config.args.get("port")
            where = f" at {host}:{port}" if port else f" at {host}"
        return f"libcloud {self.driver_name}{where}"

    # --- the private client ----------------------------------------------------------------

    def _driver(self) -> Any:
        if self._driver_obj is not None:
            return self._driver_obj
        from libcloud.dns.providers import get_driver

        try:
            cls = get_driver(self.driver_name)
        except (AttributeError, KeyError, ValueError, ImportError):
            raise ProviderError(
                f"libcloud has no DNS driver {self.driver_name!r}",
                hint="use a name of libcloud.dns.types.Provider, e.g. powerdns, cloudflare",
            ) from None
        kwargs: dict[str, Any] = dict(self.config.args)
        if self.driver_name == "powerdns":
            kwargs.setdefault("api_version", "v1")
            kwargs.setdefault("secure", False)
        self._driver_obj = libcloud_driver(self, cls, self.driver_name, self.config, kwargs)
        return self._driver_obj

    def _zone(self, zone: str) -> Any:
        if zone in self._zones:
            return self._zones[zone]
        driver = self._driver()
        if self.driver_name == "powerdns":
            found = driver.get_zone(zone + ".")
        else:
            found = next((z for z in driver.list_zones() if normalize_name(z.domain) == zone), None)
            if found is None:
                raise NotFound(f"zone {zone} not found", hint="check the zone name and the account")
        self._zones[zone] = found
        return found

    def _driver_name_for(self, key: RecordKey) -> str:
        if self.record_names == "relative":
            return key.relative
        if self.record_names == "fqdn":
            return key.name
        return key.name + "."

    def _matches(self, record: Any, key: RecordKey) -> bool:
        if str(record.type).upper() != key.rtype:
            return False
        name = normalize_name(record.name or "")
        if self.record_names == "relative" and name in ("", "@"):
            return key.name == key.zone
        if name == key.name:
            return True
        return self.record_names == "relative" and f"{name}.{key.zone}" == key.name

    def _records(self, zone: str) -> list[Any]:
        return list(self._driver().list_records(self._zone(zone)))

    def _to_set(self, key: RecordKey, records: list[Any]) -> RecordSet | None:
        matching = [r for r in records if self._matches(r, key)]
        if not matching:
            return None
        ttl = next((_ttl(r) for r in matching if _ttl(r) is not None), None)
        return RecordSet(key, tuple(str(r.data) for r in matching), ttl)

    # --- hooks ----------------------------------------------------------------------------

    def _read(self, key: RecordKey) -> RecordSet | None:
        return self._to_set(key, self._records(key.zone))

    def _read_many(self, keys: Sequence[RecordKey]) -> dict[RecordKey, RecordSet | None]:
        by_zone: dict[str, list[Any]] = {}
        out: dict[RecordKey, RecordSet | None] = {}
        for key in keys:
            if key.zone not in by_zone:
                by_zone[key.zone] = self._records(key.zone)
            out[key] = self._to_set(key, by_zone[key.zone])
        return out

    def _apply(self, changes: Sequence[RecordChange]) -> Any:
        if self.driver_name == "powerdns":
            return self._apply_powerdns(changes)
        driver = self._driver()
        for change in changes:
            key = change.key
            zone = self._zone(key.zone)
            existing = [r for r in driver.list_records(zone) if self._matches(r, key)]
            name = self._driver_name_for(key)
            values = list(_data(change.new))
            extra = {"ttl": change.new.ttl}
            self._mark_sent()
            if len(existing) == 1 and len(values) == 1:
                driver.update_record(existing[0], name, key.rtype, values[0], extra=extra)
                continue
            for record in existing:
                if driver.delete_record(record) is False:
                    raise ProviderError(f"the driver could not delete a {key} record")
            for value in values:
                driver.create_record(name, zone, key.rtype, value, extra=extra)
        return None

    def _apply_powerdns(self, changes: Sequence[RecordChange]) -> Any:
        driver = self._driver()
        zones = {change.key.zone for change in changes}
        if len(zones) != 1:
            raise ProviderError("one change can touch one zone only")
        zone = self._zone(zones.pop())
        rrsets = [
            {
                "name": change.key.name + ".",
                "type": change.key.rtype,
                "changetype": "REPLACE",
                "ttl": change.new.ttl,
                "records": [{"content": v, "disabled": False} for v in _data(change.new)],
            }
            for change in changes
        ]
        action = f"{driver.api_root}/servers/{driver.ex_server}/zones/{zone.id}"
        self._mark_sent()
        driver.connection.request(
            action=action, data=json.dumps({"rrsets": rrsets}), method="PATCH"
        )
        return None

    def _translate(self, exc: BaseException, action: str) -> FailoverError | None:
        import requests
        from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
        from libcloud.common.types import InvalidCredsError, LibcloudError
        from libcloud.dns.types import ZoneDoesNotExistError

        if isinstance(exc, InvalidCredsError):
            return AuthError(
                f"{action}: authentication failed",
                hint=f"check the API key ({self.config.key.source})",
            )
        if isinstance(exc, ZoneDoesNotExistError):
            return NotFound(f"{action}: zone not found", hint="check the site's dns.zone")
        if isinstance(exc, RateLimitReachedError):
            return RateLimited(f"{action}: rate limited by the API", hint="try again later")
        if isinstance(exc, BaseHTTPError):
            code = int(getattr(exc, "code", 0) or 0)
            detail = " ".join(str(getattr(exc, "message", exc)).split())[:200]
            if code in (401, 403):
                return AuthError(
                    f"{action}: access denied (HTTP {code}): {detail}",
                    hint=f"check the credentials ({self.config.key.source})",
                )
            if code == 404:
                return NotFound(
                    f"{action}: the zone is not at this provider (HTTP 404)",
                    hint="check the site's dns.zone",
                )
            if code == 429:
                return RateLimited(f"{action}: rate limited (HTTP 429)", hint="try again later")
            return ProviderError(f"{action}: HTTP {code}: {detail}")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return not_delivered(Unreachable(f"{action}: connecting to the API timed out"))
        if isinstance(exc, requests.exceptions.ConnectionError):
            error = Unreachable(
                f"{action}: cannot reach the API: {_root_cause(exc)}",
                hint="is the API up, and are host and port right?",
            )
            return not_delivered(error) if connection_refused(exc) else error
        if isinstance(exc, requests.exceptions.Timeout):
            return Unreachable(f"{action}: the API did not answer in time")
        if isinstance(exc, ConnectionRefusedError):
            return not_delivered(Unreachable(f"{action}: connection refused"))
        if isinstance(exc, OSError):
            return Unreachable(f"{action}: {one_line(exc)}")
        if isinstance(exc, LibcloudError):
            return ProviderError(f"{action}: {one_line(exc)}")
        return None


def _ttl(record: Any) -> int | None:
    ttl = getattr(record, "ttl", None)
    if ttl is None:
        ttl = (getattr(record, "extra", None) or {}).get("ttl")
    try:
        return None if ttl is None else int(ttl)
    except (TypeError, ValueError):
        return None


def _data(recordset: RecordSet) -> tuple[str, ...]:
    if recordset.key.rtype == "CNAME":
        return tuple(v.rstrip(".") + "." for v in recordset.values)
    return recordset.values


def _root_cause(exc: BaseException) -> str:
    if connection_refused(exc):
        return "connection refused"
    return one_line(exception_chain(exc)[-1])
