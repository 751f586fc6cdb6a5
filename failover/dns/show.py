"""What the managed records hold, for people: `failover dns show` (asks the providers and
every authoritative server: network I/O), TTL warnings, and the `status` section (reads the
state only: no network).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from failover.dns import journal
from failover.dns.apply import ProviderFactory, provider_for
from failover.dns.plan import dns_site, endpoint_of, managed_keys
from failover.dns.verify import ask, find_nameservers
from failover.errors import FailoverError
from failover.humanize import local_time
from providers.dns.base import RecordKey, RecordSet

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.config.models import Site
    from failover.store import Store


def show_dns(
    loaded: LoadedConfig,
    site_name: str | None = None,
    *,
    store: Store | None = None,
    query_timeout: float = 2.0,
    factory: ProviderFactory | None = None,
) -> list[dict[str, Any]]:
    """Each managed record: as the provider has it (values, TTL, which endpoint), as each
    authoritative server answers it, and the site's last switch from the state."""
    names = [site_name] if site_name else [n for n, s in loaded.config.sites.items() if s.dns]
    out: list[dict[str, Any]] = []
    for name in names:
        site = dns_site(loaded, name)
        assert site.dns is not None
        entry: dict[str, Any] = {
            "site": name,
            "provider": site.dns.provider,
            "zone": site.dns.zone,
            "max_ttl": site.dns.max_ttl,
            "records": [],
            "error": None,
        }
        keys = managed_keys(site)
        current: Mapping[RecordKey, RecordSet | None] = {}
        provider = provider_for(loaded, name, factory)
        try:
            current = provider.read_many(keys)
        except FailoverError as exc:
            entry["error"] = str(exc)
        finally:
            provider.close()
        servers: list[tuple[str, int]] = []
        try:
            servers = find_nameservers(site.dns.zone, site.dns.nameservers, query_timeout)
        except FailoverError as exc:
            entry["error"] = (entry["error"] + "; " if entry["error"] else "") + str(exc)
        for key in keys:
            have = current.get(key)
            answers = [ask(s, key, query_timeout) for s in servers]
            for a in answers:
                a.ok = (
                    a.error is None and have is not None and set(a.values or []) == set(have.values)
                )
            entry["records"].append(
                {
                    "name": key.name,
                    "type": key.rtype,
                    "provider": None if have is None else list(have.values),
                    "ttl": None if have is None else have.ttl,
                    "endpoint": endpoint_of(site, key, have) if have is not None else None,
                    "known": bool(current)
                    and (have is None or endpoint_of(site, key, have) is not None),
                    "nameservers": [a.to_dict() for a in answers],
                }
            )
        if store is not None:
            try:
                entry["last_switch"] = journal.last_switch(store, name)
                if current:
                    journal.record_observed(
                        store, name, [current.get(k) or (k, None) for k in keys]
                    )
            except Exception:  # a read-only state cannot take the observed values; fine
                entry.setdefault("last_switch", None)
        out.append(entry)
    return out


def dns_ttl_warnings(
    loaded: LoadedConfig,
    *,
    store: Store | None = None,
    live: bool = True,
    sites: Iterable[str] | None = None,
    factory: ProviderFactory | None = None,
) -> list[str]:
    """Warnings for `status`: managed records whose TTL is longer than the site's max_ttl.

    live=True asks each provider (one read per site) and, given a writable store, records
    what it saw; live=False uses what the state last observed (no network: for `status`).
    A provider that cannot be read gives a warning too.
    """
    warnings: list[str] = []
    wanted = set(sites) if sites is not None else None
    for name, site in loaded.config.sites.items():
        if site.dns is None or (wanted is not None and name not in wanted):
            continue
        max_ttl = site.dns.max_ttl
        for record in site.dns.records:
            if record.ttl > max_ttl:
                warnings.append(
                    f"site {name}: {record.name} {record.type} is configured with TTL "
                    f"{record.ttl}s, more than max_ttl {max_ttl}s"
                )
        observed: dict[tuple[str, str], int | None] = {}
        if live:
            provider = provider_for(loaded, name, factory)
            try:
                current = provider.read_many(managed_keys(site))
            except FailoverError as exc:
                warnings.append(f"site {name}: cannot read DNS records: {exc}")
                continue
            finally:
                provider.close()
            for key, rs in current.items():
                observed[(key.name, key.rtype)] = None if rs is None else rs.ttl
            if store is not None:
                try:
                    journal.record_observed(store, name, [current[k] or (k, None) for k in current])
                except Exception:  # a read-only state: nothing to remember
                    pass
        elif store is not None:
            observed = {
                (o["name"], o["type"]): o["ttl"] for o in observed_records(store, site, name)
            }
        for (rname, rtype), ttl in sorted(observed.items()):
            if ttl is not None and ttl > max_ttl:
                warnings.append(
                    f"site {name}: {rname} {rtype} has TTL {ttl}s at the provider, more than "
                    f"max_ttl {max_ttl}s (users would follow a failover only after that long)"
                )
    return warnings


def observed_records(store: Store, site: Site, site_name: str) -> list[dict[str, Any]]:
    """The managed records as the provider last showed them (state only, no network)."""
    by_key = journal.observed(store, site_name)
    out = []
    for key in managed_keys(site):
        seen = by_key.get((key.name, key.rtype))
        if seen is None:
            continue
        have = None if seen.values is None else RecordSet(key, seen.values, seen.ttl)
        out.append(
            {
                "name": key.name,
                "type": key.rtype,
                "values": None if have is None else list(have.values),
                "ttl": seen.ttl,
                "endpoint": endpoint_of(site, key, have),
                "observed": seen.ts,
            }
        )
    return out


def records_predate_active(
    store: Store, site: Site, site_name: str, records: list[dict[str, Any]] | None = None
) -> tuple[float, str, float] | None:
    """(when the records were read, the active endpoint, since when) if the managed records
    were last read before the recorded active endpoint took over and point elsewhere: under
    coordination the leader switched DNS and this watcher's reading is from before that."""
    records = observed_records(store, site, site_name) if records is None else records
    row = store.active_endpoint(site_name)
    if not records or row is None:
        return None
    read_at = min(float(r["observed"]) for r in records)
    active, since = str(row["active"]), float(row["since"])
    pointing = {r["endpoint"] for r in records} - {None}
    if read_at < since and pointing and active not in pointing:
        return read_at, active, since
    return None


def dns_status_section(loaded: LoadedConfig, store: Store | None, site_name: str) -> dict[str, Any]:
    """A `status` section (failover.status.add_site_section): the site's managed records as
    last observed, its last switch, and warnings (long TTLs, a switch that did not finish
    or was not verified). Reads the state only: no network."""
    site = loaded.config.sites[site_name]
    if site.dns is None:
        return {}
    warnings = dns_ttl_warnings(loaded, store=store, live=False, sites=[site_name])
    warnings = [w.removeprefix(f"site {site_name}: ") for w in warnings]
    section: dict[str, Any] = {
        "provider": site.dns.provider,
        "zone": site.dns.zone,
        "records": [],
        "last_switch": None,
    }
    if store is not None:
        section["records"] = observed_records(store, site, site_name)
        last = journal.last_switch(store, site_name)
        if last is not None:
            section["last_switch"] = {
                k: last[k]
                for k in (
                    "started",
                    "from_endpoint",
                    "to_endpoint",
                    "outcome",
                    "synced",
                    "verified",
                    "detail",
                )
            }
            if last["outcome"] in ("pending", "failed", "partial", "unknown"):
                warnings.append(
                    f"the last DNS switch to {last['to_endpoint']} is {last['outcome']}"
                    + (f": {last['detail']}" if last["detail"] else "")
                )
            elif last["verified"] == 0:
                warnings.append(
                    f"the last DNS switch to {last['to_endpoint']} was not verified on every "
                    "authoritative server (failover dns show)"
                )
        stale = records_predate_active(store, site, site_name, section["records"])
        if stale is not None:
            read_at, active, since = stale
            warnings.append(
                f"the managed records were read {local_time(read_at)}, before {active} became "
                f"active {local_time(since)}: they may have changed since (failover dns show "
                "reads them now)"
            )
        pointing = {r["endpoint"] for r in section["records"]}
        if section["records"] and None in pointing:
            warnings.append("a managed DNS record holds no endpoint's value (failover dns show)")
    return {"dns": section, "warnings": warnings}
