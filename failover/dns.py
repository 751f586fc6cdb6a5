"""Switching a site's DNS records between its endpoints: plan, apply, verify, show.

- `plan_dns_switch()` is pure: config + the records as the provider has them + a target
  endpoint -> a DnsPlan with every managed record's old and new values and a verdict
  (apply, noop, refused). A record whose value is no endpoint's (changed by hand) or that
  does not exist refuses the plan unless forced.
- `apply_dns_plan()` journals the switch and each record change in the state before it
  sends anything, applies through the provider, waits for the provider to report the change
  done, and records exactly what was and was not changed (reading the records back when a
  failure leaves it open).
- `verify_dns()` asks every authoritative nameserver directly (dnspython) until all serve
  the new values or the deadline passes, and reports per server.
- `show_dns()` and `dns_ttl_warnings()` feed `failover dns show` and `failover status`.

The failover runbook calls `switch_site_dns()`, which strings these together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from failover.errors import FailoverError, ProviderError, UnsafePlan, UsageError
from providers.dns.base import (
    ApplyError,
    DnsProvider,
    RecordChange,
    RecordKey,
    RecordSet,
    normalize_value,
    one_line,
)

if TYPE_CHECKING:
    from failover.config import LoadedConfig
    from failover.config.models import Site
    from failover.store import Store

DNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS dns_switches (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL,
    site TEXT NOT NULL,
    provider TEXT NOT NULL,
    zone TEXT NOT NULL,
    from_endpoint TEXT,          -- NULL: the records held no (single) endpoint's values
    to_endpoint TEXT NOT NULL,
    forced INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,       -- pending, applied, failed, partial, unknown, noop
    synced INTEGER,              -- the provider reported the change done (NULL: not asked)
    verified INTEGER,            -- every authoritative server serves the new values
    detail TEXT
);
CREATE INDEX IF NOT EXISTS dns_switches_by_site ON dns_switches(site, started);
CREATE TABLE IF NOT EXISTS dns_changes (
    id INTEGER PRIMARY KEY,
    switch_id INTEGER NOT NULL,
    zone TEXT NOT NULL,
    name TEXT NOT NULL,
    rtype TEXT NOT NULL,
    old_values TEXT,             -- JSON list; NULL: the record did not exist
    old_ttl INTEGER,
    new_values TEXT NOT NULL,    -- JSON list
    new_ttl INTEGER NOT NULL,
    outcome TEXT NOT NULL,       -- pending, applied, not_applied, unknown
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dns_changes_by_switch ON dns_changes(switch_id);
CREATE TABLE IF NOT EXISTS dns_observed (
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    rtype TEXT NOT NULL,
    provider_values TEXT,        -- JSON list; NULL: no such record at the provider
    ttl INTEGER,
    ts REAL NOT NULL,
    PRIMARY KEY (site, name, rtype)
);
"""

Verdict = Literal["apply", "noop", "refused"]
ProviderFactory = Callable[[str, Any], DnsProvider]


# --- planning (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedChange:
    key: RecordKey
    old: RecordSet | None
    new: RecordSet
    old_endpoint: str | None
    """The endpoint whose value the record holds now; None when it holds no endpoint's."""

    @property
    def changes(self) -> bool:
        """True when the record must be written: values differ, or the TTL does (a provider
        that does not report TTLs, old.ttl None, is not rewritten for the TTL alone)."""
        if self.old is None or not self.new.same_values(self.old):
            return True
        return self.old.ttl is not None and self.old.ttl != self.new.ttl

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.key.name,
            "type": self.key.rtype,
            "old": None if self.old is None else list(self.old.values),
            "old_ttl": None if self.old is None else self.old.ttl,
            "old_endpoint": self.old_endpoint,
            "new": list(self.new.values),
            "new_ttl": self.new.ttl,
            "change": self.changes,
        }


@dataclass(frozen=True)
class DnsPlan:
    site: str
    provider: str
    zone: str
    target: str
    records: tuple[PlannedChange, ...]
    verdict: Verdict
    reasons: tuple[str, ...] = ()
    """Why the plan is refused; with force, the same reasons stay as warnings."""
    forced: bool = False
    from_endpoint: str | None = None
    notes: tuple[str, ...] = ()
    """Things the plan leaves alone, for the person reading it (never blocking)."""

    @property
    def pending(self) -> list[PlannedChange]:
        return [r for r in self.records if r.changes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "provider": self.provider,
            "zone": self.zone,
            "from": self.from_endpoint,
            "to": self.target,
            "verdict": self.verdict,
            "forced": self.forced,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "records": [r.to_dict() for r in self.records],
        }


def managed_keys(site: Site) -> list[RecordKey]:
    if site.dns is None:
        return []
    return [RecordKey(site.dns.zone, r.name, r.type) for r in site.dns.records]


def endpoint_values(site: Site, endpoint: str, rtype: str) -> tuple[str, ...]:
    value = site.endpoints[endpoint].dns_value(rtype)
    return () if value is None else (normalize_value(rtype, value),)


def endpoint_of(site: Site, key: RecordKey, current: RecordSet | None) -> str | None:
    """The endpoint whose value `current` holds, or None (no record, or nobody's value)."""
    if current is None:
        return None
    for name in site.endpoints:
        if set(endpoint_values(site, name, key.rtype)) == set(current.values):
            return name
    return None


def plan_dns_switch(
    site_name: str,
    site: Site,
    current: Mapping[RecordKey, RecordSet | None],
    target: str,
    *,
    force: bool = False,
) -> DnsPlan:
    """Plan pointing every managed record of `site` at endpoint `target`. Pure.

    `current` holds each managed record as the provider has it (None: no such record).
    """
    if site.dns is None:
        raise UsageError(f"site {site_name} has no dns section: nothing to switch")
    if target not in site.endpoints:
        known = ", ".join(site.endpoints)
        raise UsageError(f"site {site_name} has no endpoint {target!r} (endpoints: {known})")
    records: list[PlannedChange] = []
    blocking: list[str] = []
    for record in site.dns.records:
        key = RecordKey(site.dns.zone, record.name, record.type)
        old = current.get(key)
        new = RecordSet(key, endpoint_values(site, target, record.type), record.ttl)
        planned = PlannedChange(key, old, new, endpoint_of(site, key, old))
        records.append(planned)
        # Only a record this plan would change can make it unsafe.
        if not planned.changes:
            continue
        if old is None:
            blocking.append(f"{key} does not exist at the provider")
        elif planned.old_endpoint is None:
            shown = ", ".join(old.values) or "(empty)"
            blocking.append(f"{key} holds {shown}, which is no endpoint's value (changed by hand?)")
    owners = {r.old_endpoint for r in records}
    common: dict[str, Any] = {
        "site": site_name,
        "provider": site.dns.provider,
        "zone": site.dns.zone,
        "target": target,
        "records": tuple(records),
        "from_endpoint": owners.pop() if len(owners) == 1 else None,
    }
    if not any(r.changes for r in records):
        return DnsPlan(**common, verdict="noop")
    if blocking and not force:
        return DnsPlan(**common, verdict="refused", reasons=tuple(blocking))
    return DnsPlan(**common, verdict="apply", reasons=tuple(blocking), forced=bool(blocking))


def format_plan(plan: DnsPlan) -> list[str]:
    """The plan as lines for a person: one per record, old -> new, TTL."""
    head = f"site {plan.site}: point DNS at {plan.target}"
    if plan.from_endpoint:
        head += f" (now {plan.from_endpoint})"
    lines = [head + f" via {plan.provider}, zone {plan.zone}"]
    for r in plan.records:
        old = "(none)" if r.old is None else ",".join(r.old.values) or "(empty)"
        old_ttl = "" if r.old is None or r.old.ttl is None else f" ttl {r.old.ttl}"
        new = ",".join(r.new.values)
        owner = f" [{r.old_endpoint}]" if r.old_endpoint else (" [unknown value]" if r.old else "")
        mark = "~" if r.changes else "="
        lines.append(
            f"  {mark} {r.key.name} {r.key.rtype}: {old}{old_ttl}{owner} -> {new} ttl {r.new.ttl}"
            + ("" if r.changes else " (no change)")
        )
    for reason in plan.reasons:
        lines.append(("  forced: " if plan.forced else "  refused: ") + reason)
    for note in plan.notes:
        lines.append("  note: " + note)
    return lines


def plan_dns_undo(
    site_name: str,
    site: Site,
    current: Mapping[RecordKey, RecordSet | None],
    last: Sequence[RecordChange],
    *,
    restores: str | None = None,
    force: bool = False,
) -> DnsPlan:
    """Plan putting back the values a switch replaced (`last`: its applied changes, old and
    new). Pure. A record that no longer holds what that switch wrote refuses the plan unless
    forced; a record the switch created is left alone (the interface replaces, never deletes).
    `restores` names the endpoint the old values belonged to, when there was one.
    """
    if site.dns is None:
        raise UsageError(f"site {site_name} has no dns section: nothing to undo")
    managed = {RecordKey(site.dns.zone, r.name, r.type): r for r in site.dns.records}
    records: list[PlannedChange] = []
    blocking: list[str] = []
    notes: list[str] = []
    for change in last:
        key = change.key
        if key not in managed:
            notes.append(f"{key} is no longer managed by this site: left alone")
            continue
        if change.old is None or not change.old.values:
            notes.append(f"{key} did not exist before that switch: left alone (delete by hand)")
            continue
        cur = current.get(key)
        new = RecordSet(key, change.old.values, change.old.ttl or managed[key].ttl)
        planned = PlannedChange(key, cur, new, endpoint_of(site, key, cur))
        records.append(planned)
        if planned.changes and not change.new.same_values(cur):
            shown = "(none)" if cur is None else ", ".join(cur.values) or "(empty)"
            blocking.append(
                f"{key} holds {shown}, not {', '.join(change.new.values)} as that switch left "
                "it (changed since?)"
            )
    if not last:
        raise UsageError(f"site {site_name}: no applied DNS switch in the state to undo")
    owners = {r.old_endpoint for r in records}
    common: dict[str, Any] = {
        "site": site_name,
        "provider": site.dns.provider,
        "zone": site.dns.zone,
        "target": restores or "(previous values)",
        "records": tuple(records),
        "from_endpoint": owners.pop() if len(owners) == 1 else None,
        "notes": tuple(notes),
    }
    if not any(r.changes for r in records):
        return DnsPlan(**common, verdict="noop")
    if blocking and not force:
        return DnsPlan(**common, verdict="refused", reasons=tuple(blocking))
    return DnsPlan(**common, verdict="apply", reasons=tuple(blocking), forced=bool(blocking))


def last_switch_changes(store: Store, site: str) -> tuple[list[RecordChange], str | None]:
    """The applied record changes of the site's last switch that changed something, and the
    endpoint it left."""
    last = last_switch(store, site, changed_only=True)
    if last is None:
        return [], None
    changes = []
    for c in last["changes"]:
        if c["outcome"] != "applied":
            continue
        key = RecordKey(last["zone"], c["name"], c["rtype"])
        old = (
            None
            if c["old_values"] is None
            else RecordSet(key, tuple(c["old_values"]), c["old_ttl"])
        )
        changes.append(RecordChange(old, RecordSet(key, tuple(c["new_values"]), c["new_ttl"])))
    return changes, last["from_endpoint"]


# --- applying, journaled ------------------------------------------------------------------


@dataclass
class ApplyResult:
    switch_id: int | None
    outcome: str
    """applied, noop, failed (nothing changed), partial, unknown."""
    changes: dict[str, str] = field(default_factory=dict)
    """'name TYPE' -> applied, not_applied, unknown."""
    synced: bool | None = None
    detail: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _journal_start(store: Store, plan: DnsPlan, now: float) -> tuple[int, dict[RecordKey, int]]:
    with store.transaction() as c:
        cur = c.execute(
            "INSERT INTO dns_switches(started, finished, site, provider, zone, from_endpoint,"
            " to_endpoint, forced, outcome, detail) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                now,
                None if plan.pending else now,
                plan.site,
                plan.provider,
                plan.zone,
                plan.from_endpoint,
                plan.target,
                int(plan.forced),
                "pending" if plan.pending else "noop",
                "; ".join(plan.reasons) or None,
            ),
        )
        switch_id = int(cur.lastrowid or 0)
        ids: dict[RecordKey, int] = {}
        for r in plan.pending:
            row = c.execute(
                "INSERT INTO dns_changes(switch_id, zone, name, rtype, old_values, old_ttl,"
                " new_values, new_ttl, outcome, ts) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    switch_id,
                    r.key.zone,
                    r.key.name,
                    r.key.rtype,
                    None if r.old is None else json.dumps(list(r.old.values)),
                    None if r.old is None else r.old.ttl,
                    json.dumps(list(r.new.values)),
                    r.new.ttl,
                    "pending",
                    now,
                ),
            )
            ids[r.key] = int(row.lastrowid or 0)
    return switch_id, ids


def _journal_outcomes(
    store: Store,
    switch_id: int,
    ids: Mapping[RecordKey, int],
    outcomes: Mapping[RecordKey, str],
    outcome: str,
    detail: str | None,
    now: float,
) -> None:
    with store.transaction() as c:
        for key, change_id in ids.items():
            c.execute(
                "UPDATE dns_changes SET outcome=?, ts=? WHERE id=?",
                (outcomes.get(key, "unknown"), now, change_id),
            )
        c.execute(
            "UPDATE dns_switches SET outcome=?, finished=?, detail=COALESCE(?, detail) WHERE id=?",
            (outcome, now, detail, switch_id),
        )


def apply_dns_plan(
    plan: DnsPlan,
    provider: DnsProvider,
    store: Store,
    *,
    wait_seconds: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> ApplyResult:
    """Apply a plan through `provider`, journaling before and after in `store`.

    Raises UnsafePlan for a refused plan (exit 3), and the provider's error (AuthError,
    NotFound, Unreachable, ...) when the change fails; in every case the state records for
    each record whether it was applied, not applied, or unknown (provider unreachable).
    """
    if plan.verdict == "refused":
        raise UnsafePlan(
            f"site {plan.site}: refusing to switch DNS: " + "; ".join(plan.reasons),
            hint="check the records; --force overwrites them",
        )
    store.ensure_schema(DNS_SCHEMA)
    settle_interrupted(store, provider, plan.site, clock)
    started = time.monotonic()
    switch_id, ids = _journal_start(store, plan, clock())
    if plan.verdict == "noop":
        return ApplyResult(switch_id, "noop", detail="every record already holds the target")
    changes = [RecordChange(r.old, r.new) for r in plan.pending]
    try:
        handle = provider.apply(changes)
    except ApplyError as exc:
        outcomes, how = _reconcile(provider, plan, exc)
        outcome = _overall(outcomes)
        _journal_outcomes(store, switch_id, ids, outcomes, outcome, f"{exc}; {how}", clock())
        summary = _summary(plan, outcomes)
        raise type(exc.cause)(f"{exc.args[0]}; {summary}", hint=exc.hint) from None
    outcomes = {r.key: "applied" for r in plan.pending}
    _journal_outcomes(store, switch_id, ids, outcomes, "applied", None, clock())
    synced: bool | None = None
    detail: str | None = None
    if provider.capabilities.reports_sync:
        try:
            provider.wait(handle, time.monotonic() + wait_seconds)
            synced = True
        except FailoverError as exc:
            synced = False
            detail = f"applied; the provider did not report it done: {exc}"
        with store.transaction() as c:
            c.execute(
                "UPDATE dns_switches SET synced=?, detail=COALESCE(?, detail) WHERE id=?",
                (int(synced), detail, switch_id),
            )
    record_observed(store, plan.site, [r.new for r in plan.records])
    return ApplyResult(
        switch_id,
        "applied",
        {str(k): v for k, v in outcomes.items()},
        synced,
        detail,
        round(time.monotonic() - started, 4),
    )


def settle_interrupted(
    store: Store, provider: DnsProvider, site: str, clock: Callable[[], float] = time.time
) -> list[int]:
    """Switches of `site` still 'pending' in the state (the process stopped between
    journaling and recording the outcome): read their records back and record what actually
    happened. Returns the ids settled; a provider that cannot be read leaves them pending."""
    rows = store.conn.execute(
        "SELECT id, zone FROM dns_switches WHERE site=? AND outcome='pending' ORDER BY id",
        (site,),
    ).fetchall()
    settled = []
    for row in rows:
        changes = store.conn.execute(
            "SELECT id, name, rtype, old_values, new_values, new_ttl FROM dns_changes"
            " WHERE switch_id=? AND outcome='pending'",
            (row["id"],),
        ).fetchall()
        keys = {c["id"]: RecordKey(row["zone"], c["name"], c["rtype"]) for c in changes}
        try:
            current = provider.read_many(list(keys.values()))
        except FailoverError:
            continue
        outcomes: dict[RecordKey, str] = {}
        for c in changes:
            key = keys[c["id"]]
            have = current.get(key)
            new = RecordSet(key, tuple(json.loads(c["new_values"])), c["new_ttl"])
            old = (
                None
                if c["old_values"] is None
                else RecordSet(key, tuple(json.loads(c["old_values"])))
            )
            if have is not None and new.same_values(have) and have.ttl == new.ttl:
                outcomes[key] = "applied"
            elif (have is None and old is None) or (old is not None and old.same_values(have)):
                outcomes[key] = "not_applied"
            else:
                outcomes[key] = "unknown"
        ids = {keys[c["id"]]: c["id"] for c in changes}
        _journal_outcomes(
            store,
            row["id"],
            ids,
            outcomes,
            _overall(outcomes) if outcomes else "failed",
            "interrupted before its outcome was recorded; records read back later",
            clock(),
        )
        settled.append(int(row["id"]))
    return settled


def _reconcile(
    provider: DnsProvider, plan: DnsPlan, exc: ApplyError
) -> tuple[dict[RecordKey, str], str]:
    """After a failed apply: which records changed? Read them back when that is open."""
    if not exc.sent:
        return {r.key: "not_applied" for r in plan.pending}, "nothing was sent"
    try:
        now = provider.read_many([r.key for r in plan.pending])
    except FailoverError as read_error:
        return (
            {r.key: "unknown" for r in plan.pending},
            f"could not read the records back: {read_error}",
        )
    outcomes: dict[RecordKey, str] = {}
    for r in plan.pending:
        current = now.get(r.key)
        if current is not None and r.new.same_values(current) and current.ttl == r.new.ttl:
            outcomes[r.key] = "applied"
        elif (current is None and r.old is None) or (
            r.old is not None and r.old.same_values(current)
        ):
            outcomes[r.key] = "not_applied"
        else:
            outcomes[r.key] = "unknown"
    return outcomes, "read the records back"


def _overall(outcomes: Mapping[RecordKey, str]) -> str:
    values = set(outcomes.values())
    if values == {"applied"}:
        return "applied"
    if values == {"not_applied"}:
        return "failed"
    if "unknown" in values:
        return "unknown"
    return "partial"


def _summary(plan: DnsPlan, outcomes: Mapping[RecordKey, str]) -> str:
    applied = [str(k) for k, v in outcomes.items() if v == "applied"]
    unknown = [str(k) for k, v in outcomes.items() if v == "unknown"]
    total = len(plan.pending)
    if not applied and not unknown:
        return f"nothing was changed ({total} record(s) left as they were)"
    parts = []
    if applied:
        parts.append(f"changed: {', '.join(applied)}")
    if unknown:
        parts.append(f"outcome unknown: {', '.join(unknown)}")
    left = total - len(applied) - len(unknown)
    if left:
        parts.append(f"{left} left as they were")
    return "; ".join(parts)


def record_observed(
    store: Store,
    site: str,
    recordsets: Iterable[RecordSet | tuple[RecordKey, None]],
    now: float | None = None,
) -> None:
    """Remember what the provider holds (for status, without asking the provider again)."""
    store.ensure_schema(DNS_SCHEMA)
    ts = time.time() if now is None else now
    with store.transaction() as c:
        for item in recordsets:
            if isinstance(item, RecordSet):
                c.execute(
                    "INSERT OR REPLACE INTO dns_observed(site, name, rtype, provider_values, ttl, ts)"
                    " VALUES (?,?,?,?,?,?)",
                    (
                        site,
                        item.key.name,
                        item.key.rtype,
                        json.dumps(list(item.values)),
                        item.ttl,
                        ts,
                    ),
                )
            else:
                key = item[0]
                c.execute(
                    "INSERT OR REPLACE INTO dns_observed(site, name, rtype, provider_values, ttl, ts)"
                    " VALUES (?,?,?,NULL,NULL,?)",
                    (site, key.name, key.rtype, ts),
                )


def last_switch(store: Store, site: str, *, changed_only: bool = False) -> dict[str, Any] | None:
    """The newest journaled switch of a site, with its record changes (old values kept)."""
    import sqlite3

    try:
        wanted = "IN ('applied', 'partial')" if changed_only else "!= 'noop'"
        row = store.conn.execute(
            f"SELECT * FROM dns_switches WHERE site=? AND outcome {wanted}"
            " ORDER BY id DESC LIMIT 1",
            (site,),
        ).fetchone()
    except sqlite3.OperationalError:  # no switch journaled yet: no table
        return None
    if row is None:
        return None
    out = dict(row)
    out["changes"] = [
        {
            **dict(c),
            "old_values": None if c["old_values"] is None else json.loads(c["old_values"]),
            "new_values": json.loads(c["new_values"]),
        }
        for c in store.conn.execute(
            "SELECT name, rtype, old_values, old_ttl, new_values, new_ttl, outcome FROM dns_changes"
            " WHERE switch_id=? ORDER BY id",
            (row["id"],),
        )
    ]
    return out


# --- verification ---------------------------------------------------------------------------


@dataclass
class ServerAnswer:
    server: str
    name: str
    rtype: str
    values: list[str] | None = None
    ttl: int | None = None
    ok: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    ok: bool
    seconds: float
    answers: list[ServerAnswer]
    resolvers: list[ServerAnswer] = field(default_factory=list)

    @property
    def failing(self) -> list[ServerAnswer]:
        return [a for a in self.answers if not a.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": self.seconds,
            "answers": [a.to_dict() for a in self.answers],
            "resolvers": [a.to_dict() for a in self.resolvers],
        }


def parse_servers(items: Iterable[str]) -> list[tuple[str, int]]:
    from failover.config.dns import parse_server

    return [parse_server(item) for item in items]


def find_nameservers(
    zone: str,
    configured: Sequence[str] | None,
    timeout: float = 5.0,
    *,
    resolver_address: tuple[str, int] | None = None,
) -> list[tuple[str, int]]:
    """The zone's authoritative servers as (address, port): the configured list when given,
    else the zone's NS records resolved to addresses through the system resolver (or the
    server at `resolver_address`)."""
    if configured:
        return parse_servers(configured)
    import dns.exception
    import dns.resolver

    if resolver_address is None:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [resolver_address[0]]
        resolver.port = resolver_address[1]
    resolver.lifetime = timeout
    try:
        ns_names = sorted(str(r.target) for r in resolver.resolve(zone + ".", "NS"))
    except dns.exception.DNSException as exc:
        raise ProviderError(
            f"cannot look up the nameservers of {zone}: {one_line(exc)}",
            hint="set dns.nameservers in the site to list them",
        ) from None
    servers: list[tuple[str, int]] = []
    for ns in ns_names:
        for rtype in ("A", "AAAA"):
            try:
                servers.extend((str(a), 53) for a in resolver.resolve(ns, rtype))
            except dns.exception.DNSException:
                continue
    if not servers:
        raise ProviderError(f"the nameservers of {zone} ({', '.join(ns_names)}) have no address")
    return servers


def ask(
    server: tuple[str, int], key: RecordKey, timeout: float, recursive: bool = False
) -> ServerAnswer:
    """One query of `key` to one server, directly."""
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    host, port = server
    label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    answer = ServerAnswer(label, key.name, key.rtype)
    query = dns.message.make_query(key.name + ".", key.rtype)
    if not recursive:
        query.flags &= ~dns.flags.RD
    try:
        response = dns.query.udp(query, host, port=port, timeout=timeout)
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(query, host, port=port, timeout=timeout)
    except dns.exception.Timeout:
        answer.error = f"no answer within {timeout:g}s"
        return answer
    except (OSError, dns.exception.DNSException) as exc:
        answer.error = one_line(exc)
        return answer
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        answer.error = dns.rcode.to_text(rcode)
        return answer
    if not recursive and not response.flags & dns.flags.AA:
        answer.error = "not authoritative for the zone"
        return answer
    rdtype = dns.rdatatype.from_text(key.rtype)
    values: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype == rdtype and rrset.name.to_text().rstrip(".").lower() == key.name:
            values = sorted({normalize_value(key.rtype, rd.to_text()) for rd in rrset})
            answer.ttl = rrset.ttl
    answer.values = values
    return answer


def verify_dns(
    expected: Sequence[RecordSet],
    nameservers: Sequence[tuple[str, int]],
    deadline: float,
    *,
    resolvers: Sequence[tuple[str, int]] = (),
    interval: float = 0.1,
    query_timeout: float = 2.0,
) -> VerifyReport:
    """Ask every nameserver for every record until all serve the expected values, or until
    `deadline` seconds have passed. Resolvers, when given, are asked once at the end."""
    started = time.monotonic()
    end = started + max(0.0, deadline)
    pending = [(server, rs) for server in nameservers for rs in expected]
    results: dict[tuple[tuple[str, int], RecordKey], ServerAnswer] = {}
    pool = ThreadPoolExecutor(max_workers=min(8, max(1, len(pending))))
    try:
        while True:
            timeout = max(0.2, min(query_timeout, end - time.monotonic()))
            futures = {
                (server, rs.key): pool.submit(ask, server, rs.key, timeout)
                for server, rs in pending
            }
            wanted = {rs.key: rs for _, rs in pending}
            still: list[tuple[tuple[str, int], RecordSet]] = []
            for (server, key), future in futures.items():
                answer = future.result()
                rs = wanted[key]
                answer.ok = answer.error is None and set(answer.values or []) == set(rs.values)
                results[(server, key)] = answer
                if not answer.ok:
                    still.append((server, rs))
            pending = still
            if not pending or time.monotonic() >= end:
                break
            time.sleep(min(interval, max(0.0, end - time.monotonic())))
        resolver_answers: list[ServerAnswer] = []
        for server in resolvers:
            for rs in expected:
                a = ask(server, rs.key, query_timeout, recursive=True)
                a.ok = a.error is None and set(a.values or []) == set(rs.values)
                resolver_answers.append(a)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    ordered = [results[(s, rs.key)] for s in nameservers for rs in expected]
    return VerifyReport(
        ok=all(a.ok for a in ordered) and bool(ordered),
        seconds=round(time.monotonic() - started, 4),
        answers=ordered,
        resolvers=resolver_answers,
    )


def format_verify(report: VerifyReport) -> list[str]:
    lines = []
    for a in report.answers + report.resolvers:
        seen = a.error or (",".join(a.values or []) or "(no record)")
        ttl = f" ttl {a.ttl}" if a.ttl is not None else ""
        mark = "ok " if a.ok else "OLD" if a.error is None else "ERR"
        lines.append(f"  {mark} {a.server} {a.name} {a.rtype}: {seen}{ttl}")
    return lines


# --- the whole switch, for the CLI and the runbook -------------------------------------------


def provider_for(
    loaded: LoadedConfig, site_name: str, factory: ProviderFactory | None = None
) -> DnsProvider:
    site = _site(loaded, site_name)
    assert site.dns is not None
    if factory is None:
        from providers.dns import make_provider

        factory = make_provider
    return factory(site.dns.provider, loaded.config.dns_providers[site.dns.provider])


def _site(loaded: LoadedConfig, site_name: str) -> Site:
    site = loaded.config.sites.get(site_name)
    if site is None:
        known = ", ".join(loaded.config.sites)
        raise UsageError(f"no site {site_name!r} in {loaded.path} (sites: {known})")
    if site.dns is None:
        raise UsageError(f"site {site_name} has no dns section: the tool does not manage its DNS")
    return site


@dataclass
class SwitchResult:
    plan: DnsPlan
    applied: ApplyResult | None = None
    verification: VerifyReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "apply": None if self.applied is None else self.applied.to_dict(),
            "verify": None if self.verification is None else self.verification.to_dict(),
        }


def read_current(provider: DnsProvider, site: Site) -> dict[RecordKey, RecordSet | None]:
    return provider.read_many(managed_keys(site))


def switch_site_dns(
    loaded: LoadedConfig,
    site_name: str,
    target: str,
    store: Store | None,
    *,
    apply: bool = True,
    force: bool = False,
    verify: bool = True,
    deadline: float | None = None,
    provider: DnsProvider | None = None,
    on_plan: Callable[[DnsPlan], None] | None = None,
) -> SwitchResult:
    """Read the records, plan pointing them at `target`, and (when `apply`) apply, wait for
    the provider and verify on every authoritative server.

    Raises UnsafePlan (exit 3) for a refused plan and the provider's errors; a failed
    verification does not raise: check `result.verification.ok`. `store` may be None only
    when not applying. `on_plan` sees the plan before anything is changed.
    """

    def plan(site: Site, current: Mapping[RecordKey, RecordSet | None]) -> DnsPlan:
        return plan_dns_switch(site_name, site, current, target, force=force)

    return _run(
        loaded,
        site_name,
        plan,
        store,
        apply=apply,
        verify=verify,
        deadline=deadline,
        provider=provider,
        on_plan=on_plan,
    )


def undo_site_dns(
    loaded: LoadedConfig,
    site_name: str,
    store: Store,
    *,
    apply: bool = True,
    force: bool = False,
    verify: bool = True,
    deadline: float | None = None,
    provider: DnsProvider | None = None,
    on_plan: Callable[[DnsPlan], None] | None = None,
) -> SwitchResult:
    """Put back the values the site's last switch replaced (kept in the state), exactly,
    even values that were no endpoint's. Same flow and errors as switch_site_dns()."""
    last, restores = last_switch_changes(store, site_name)

    def plan(site: Site, current: Mapping[RecordKey, RecordSet | None]) -> DnsPlan:
        return plan_dns_undo(site_name, site, current, last, restores=restores, force=force)

    return _run(
        loaded,
        site_name,
        plan,
        store,
        apply=apply,
        verify=verify,
        deadline=deadline,
        provider=provider,
        on_plan=on_plan,
    )


def _run(
    loaded: LoadedConfig,
    site_name: str,
    make_plan: Callable[[Site, Mapping[RecordKey, RecordSet | None]], DnsPlan],
    store: Store | None,
    *,
    apply: bool,
    verify: bool,
    deadline: float | None,
    provider: DnsProvider | None,
    on_plan: Callable[[DnsPlan], None] | None,
) -> SwitchResult:
    site = _site(loaded, site_name)
    assert site.dns is not None
    own = provider is None
    if provider is None:
        provider = provider_for(loaded, site_name)
    try:
        plan = make_plan(site, read_current(provider, site))
        if on_plan is not None:
            on_plan(plan)
        result = SwitchResult(plan)
        if plan.verdict == "refused":
            raise UnsafePlan(
                f"site {site_name}: refusing to switch DNS: " + "; ".join(plan.reasons),
                hint="check the records; --force overwrites them",
            )
        if not apply:
            return result
        if store is None:
            raise UsageError("applying a DNS switch needs the state store")
        seconds = site.dns.verify_deadline if deadline is None else deadline
        started = time.monotonic()
        result.applied = apply_dns_plan(plan, provider, store, wait_seconds=seconds)
        if verify:  # also for a noop: it confirms an earlier switch is served
            left = max(0.0, seconds - (time.monotonic() - started))
            servers = find_nameservers(site.dns.zone, site.dns.nameservers)
            result.verification = verify_dns(
                [r.new for r in plan.records],
                servers,
                left,
                resolvers=parse_servers(site.dns.resolvers),
            )
            with store.transaction() as c:
                c.execute(
                    "UPDATE dns_switches SET verified=? WHERE id=?",
                    (int(result.verification.ok), result.applied.switch_id),
                )
        return result
    finally:
        if own:
            provider.close()


# --- show and status ---------------------------------------------------------------------------


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
        site = _site(loaded, name)
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
                entry["last_switch"] = last_switch(store, name)
                if current:
                    record_observed(store, name, [current.get(k) or (k, None) for k in keys])
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
                    record_observed(store, name, [current[k] or (k, None) for k in current])
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
    import sqlite3

    try:
        rows = store.conn.execute(
            "SELECT name, rtype, provider_values, ttl, ts FROM dns_observed WHERE site=?",
            (site_name,),
        ).fetchall()
    except sqlite3.OperationalError:  # nothing observed yet: no table
        return []
    by_key = {(r[0], r[1]): r for r in rows}
    out = []
    for key in managed_keys(site):
        row = by_key.get((key.name, key.rtype))
        if row is None:
            continue
        values = None if row[2] is None else tuple(json.loads(row[2]))
        have = None if values is None else RecordSet(key, values, row[3])
        out.append(
            {
                "name": key.name,
                "type": key.rtype,
                "values": None if have is None else list(have.values),
                "ttl": row[3],
                "endpoint": endpoint_of(site, key, have),
                "observed": row[4],
            }
        )
    return out


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
        last = last_switch(store, site_name)
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
        pointing = {r["endpoint"] for r in section["records"]}
        if section["records"] and None in pointing:
            warnings.append("a managed DNS record holds no endpoint's value (failover dns show)")
    return {"dns": section, "warnings": warnings}


__all__ = [
    "DNS_SCHEMA",
    "ApplyResult",
    "DnsPlan",
    "PlannedChange",
    "ServerAnswer",
    "SwitchResult",
    "VerifyReport",
    "apply_dns_plan",
    "ask",
    "dns_status_section",
    "dns_ttl_warnings",
    "endpoint_of",
    "endpoint_values",
    "find_nameservers",
    "format_plan",
    "format_verify",
    "last_switch",
    "last_switch_changes",
    "managed_keys",
    "observed_records",
    "parse_servers",
    "plan_dns_switch",
    "plan_dns_undo",
    "provider_for",
    "read_current",
    "record_observed",
    "settle_interrupted",
    "show_dns",
    "switch_site_dns",
    "undo_site_dns",
    "verify_dns",
]
