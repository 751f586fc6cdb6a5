"""Planning a DNS switch or its undo: PURE (no I/O, no state, no provider).

`plan_dns_switch()` takes the config, the records as the provider has them and a target
endpoint, and returns a DnsPlan: every managed record's old and new values and a verdict
(apply, noop, refused) that travels with the plan, like octoDNS's plan and its safety
checks. A record whose value is no endpoint's (changed by hand) or that does not exist
refuses the plan unless forced. `plan_dns_undo()` does the same for putting back what the
last switch replaced. The helpers at the end turn per-record outcomes of an apply into the
switch's outcome and a summary for a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from failover.errors import UnsafePlan, UsageError
from providers.dns.base import RecordChange, RecordKey, RecordSet, normalize_value

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.config.models import Site

Verdict = Literal["apply", "noop", "refused"]
Outcome = Literal["applied", "not_applied", "unknown"]


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


def refusal(plan: DnsPlan) -> UnsafePlan:
    """The error (exit 3) for a refused plan."""
    return UnsafePlan(
        f"site {plan.site}: refusing to switch DNS: " + "; ".join(plan.reasons),
        hint="check the records; --force overwrites them",
    )


def dns_site(loaded: LoadedConfig, site_name: str) -> Site:
    """The site named `site_name`, which must have a dns section (UsageError otherwise)."""
    site = loaded.config.sites.get(site_name)
    if site is None:
        known = ", ".join(loaded.config.sites)
        raise UsageError(f"no site {site_name!r} in {loaded.path} (sites: {known})")
    if site.dns is None:
        raise UsageError(f"site {site_name} has no dns section: the tool does not manage its DNS")
    return site


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
    """Plan pointing every managed record of `site` at endpoint `target`.

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
    new). A record that no longer holds what that switch wrote refuses the plan unless
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


# --- outcomes of an apply -------------------------------------------------------------------


def change_outcome(old: RecordSet | None, new: RecordSet, have: RecordSet | None) -> Outcome:
    """What became of replacing `old` with `new`, given the record read back (`have`):
    applied (it holds the new values and TTL), not_applied (it still holds the old values,
    or still does not exist), or unknown (anything else: changed by someone else?)."""
    if have is not None and new.same_values(have) and have.ttl == new.ttl:
        return "applied"
    if (have is None and old is None) or (old is not None and old.same_values(have)):
        return "not_applied"
    return "unknown"


def overall_outcome(outcomes: Mapping[RecordKey, str]) -> str:
    """The switch's outcome from its records': applied, failed (nothing changed), unknown
    or partial."""
    values = set(outcomes.values())
    if values == {"applied"}:
        return "applied"
    if values == {"not_applied"}:
        return "failed"
    if "unknown" in values:
        return "unknown"
    return "partial"


def outcome_summary(plan: DnsPlan, outcomes: Mapping[RecordKey, str]) -> str:
    """What a failed apply changed and left, for the error a person reads."""
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
