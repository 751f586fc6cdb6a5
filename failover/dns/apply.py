"""Applying DNS plans through a provider, journaled: I/O (the provider, the state, and the
verification over the network).

`apply_dns_plan()` journals the switch and each record change in the state before it sends
anything, applies through the provider, waits for the provider to report the change done,
and records exactly what was and was not changed (reading the records back when a failure
leaves it open). A switch left 'pending' by a stopped process is settled first
(`settle_interrupted()`). `switch_site_dns()` and `undo_site_dns()` string read, plan,
apply and verify together for the CLI and the runbook.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from failover.dns import journal
from failover.dns.plan import (
    DnsPlan,
    change_outcome,
    dns_site,
    managed_keys,
    outcome_summary,
    overall_outcome,
    plan_dns_switch,
    plan_dns_undo,
    refusal,
)
from failover.dns.verify import VerifyReport, find_nameservers, parse_servers, verify_dns
from failover.errors import FailoverError, ProviderError, UsageError
from providers.dns.base import ApplyError, DnsProvider, RecordChange, RecordKey, RecordSet

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.config.models import Site
    from failover.store import Store

ProviderFactory = Callable[[str, Any], DnsProvider]


def provider_for(
    loaded: LoadedConfig, site_name: str, factory: ProviderFactory | None = None
) -> DnsProvider:
    site = dns_site(loaded, site_name)
    assert site.dns is not None
    if factory is None:
        from providers.dns import make_provider

        factory = make_provider
    return factory(site.dns.provider, loaded.config.dns_providers[site.dns.provider])


def read_current(provider: DnsProvider, site: Site) -> dict[RecordKey, RecordSet | None]:
    return provider.read_many(managed_keys(site))


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
        raise refusal(plan)
    journal.ensure_dns_schema(store)
    settle_interrupted(store, provider, plan.site, clock)
    started = time.monotonic()
    switch_id, ids = journal.journal_start(store, plan, clock())
    if plan.verdict == "noop":
        return ApplyResult(switch_id, "noop", detail="every record already holds the target")
    changes = [RecordChange(r.old, r.new) for r in plan.pending]
    try:
        handle = provider.apply(changes)
    except ApplyError as exc:
        outcomes, how = _reconcile(provider, plan, exc)
        outcome = overall_outcome(outcomes)
        journal.journal_outcomes(store, switch_id, ids, outcomes, outcome, f"{exc}; {how}", clock())
        summary = outcome_summary(plan, outcomes)
        error = type(exc.cause)(f"{exc.args[0]}; {summary}", hint=exc.hint)
        error.dns_outcome = outcome  # type: ignore[attr-defined]
        error.dns_switch_id = switch_id  # type: ignore[attr-defined]
        error.dns_plan = plan  # type: ignore[attr-defined]
        raise error from None
    outcomes = {r.key: "applied" for r in plan.pending}
    journal.journal_outcomes(store, switch_id, ids, outcomes, "applied", None, clock())
    synced: bool | None = None
    detail: str | None = None
    if provider.capabilities.reports_sync:
        try:
            provider.wait(handle, time.monotonic() + wait_seconds)
            synced = True
        except FailoverError as exc:
            synced = False
            detail = f"applied; the provider did not report it done: {exc}"
        journal.record_synced(store, switch_id, synced, detail)
    journal.record_observed(store, plan.site, [r.new for r in plan.records])
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
    settled = []
    for pending in journal.pending_switches(store, site):
        try:
            current = provider.read_many([c.key for c in pending.changes.values()])
        except FailoverError:
            continue
        outcomes: dict[RecordKey, str] = {
            c.key: change_outcome(c.old, c.new, current.get(c.key))
            for c in pending.changes.values()
        }
        ids = {c.key: change_id for change_id, c in pending.changes.items()}
        journal.journal_outcomes(
            store,
            pending.switch_id,
            ids,
            outcomes,
            overall_outcome(outcomes) if outcomes else "failed",
            "interrupted before its outcome was recorded; records read back later",
            clock(),
        )
        settled.append(pending.switch_id)
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
    outcomes: dict[RecordKey, str] = {
        r.key: change_outcome(r.old, r.new, now.get(r.key)) for r in plan.pending
    }
    return outcomes, "read the records back"


# --- an outcome left unknown: find out as soon as something answers ----------------------------

RETRY_START = 1.0  # seconds before the first read-back after an unknown outcome ...
RETRY_CAP = 2.0  # ... doubling up to this: consistent within ~2 s of the API's return


def backoff(start: float = RETRY_START, cap: float = RETRY_CAP) -> Iterator[float]:
    """Delays: start, doubling, capped."""
    delay = start
    while True:
        yield delay
        delay = min(cap, delay * 2)


def outcome_of(error: BaseException) -> tuple[str | None, int | None]:
    """(outcome, switch id) of a DNS apply that raised: unknown, partial, failed, or None."""
    return getattr(error, "dns_outcome", None), getattr(error, "dns_switch_id", None)


@dataclass
class Settled:
    outcome: str  # applied, failed (nothing changed), partial
    how: str  # "read back through the API" or "every authoritative server serves it"
    seconds: float  # from the start of settling
    api_back: float | None = None  # when the API first answered again (time.monotonic())


def settle_unknown(
    loaded: LoadedConfig,
    site_name: str,
    store: Store,
    switch_id: int,
    plan: DnsPlan,
    *,
    patience: float,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Settled:
    """A switch whose outcome is unknown (the API failed after the change was sent): read
    the records back as soon as the provider answers (backoff from 1 s, doubling, capped
    at 2 s); while it does not, ask every authoritative server (they may already serve the
    new values). Journals the outcome found. Raises ProviderError when nothing tells
    within `patience` seconds (the outcome stays unknown)."""
    site = dns_site(loaded, site_name)
    assert site.dns is not None
    started = time.monotonic()
    ids = journal.change_ids(store, switch_id)
    keys = [r.key for r in plan.pending]
    servers = find_nameservers(site.dns.zone, site.dns.nameservers)
    last_error = "no answer yet"
    for delay in backoff():
        try:
            with provider_for(loaded, site_name) as provider:
                current = provider.read_many(keys)
        except FailoverError as exc:
            last_error = str(exc)
            report = verify_dns([r.new for r in plan.pending], servers, 0.0, query_timeout=0.5)
            if report.ok:
                outcomes = {k: "applied" for k in keys}
                how = "every authoritative server serves the new values (the API did not answer)"
                journal.journal_outcomes(
                    store, switch_id, ids, outcomes, "applied", how, time.time()
                )
                return Settled("applied", how, time.monotonic() - started)
        else:
            api_back = time.monotonic()
            outcomes = {
                r.key: change_outcome(r.old, r.new, current.get(r.key)) for r in plan.pending
            }
            outcome = overall_outcome(outcomes)
            how = "read back through the API"
            journal.journal_outcomes(store, switch_id, ids, outcomes, outcome, how, time.time())
            if outcome == "applied":
                journal.record_observed(store, site_name, [r.new for r in plan.records])
            return Settled(outcome, how, api_back - started, api_back)
        if time.monotonic() - started + delay > patience:
            break
        if on_wait is not None:
            on_wait(f"the DNS provider does not answer yet ({last_error}); again in {delay:g}s")
        sleep(delay)
    raise ProviderError(
        f"the outcome of the DNS change is still unknown after {patience:g}s: {last_error}"
    )


# --- the whole switch, for the CLI and the runbook -------------------------------------------


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
    last, restores = journal.last_switch_changes(store, site_name)

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
    """The flow both share: read, plan, show (`on_plan`), refuse or apply, verify."""
    site = dns_site(loaded, site_name)
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
            raise refusal(plan)
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
            journal.record_verified(store, result.applied.switch_id, result.verification.ok)
        return result
    finally:
        if own:
            provider.close()
