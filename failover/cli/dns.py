"""`failover dns show|set`: the DNS records of sites, and switching them between endpoints.

Only typer and the standard library are imported here at module level, so that
`failover --help` stays fast; the core (failover.dns) and the providers' SDKs load when a
command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from failover.cli.confirm import Confirm
from failover.cli.context import (
    duration_flag,
    duration_option,
    echo,
    emit_json,
    load,
    open_store,
    read_store,
)
from failover.errors import FailoverError, UnsafePlan, UsageError

if TYPE_CHECKING:
    from failover.store import Store

dns_app = typer.Typer(
    help="Show the managed DNS records of sites, and point them at an endpoint.\n\n"
    "Examples:\n  failover dns show\n  failover dns set shop --to standby --yes",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@dns_app.command("show")
def show(
    site: str | None = typer.Argument(None, help="Only this site [default: every site with dns]."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    timeout: float = typer.Option(
        2.0,
        "--timeout",
        metavar="DURATION",
        parser=duration_option("--timeout"),
        help="How long to wait for each DNS answer (2s, 500ms).",
    ),
) -> None:
    """Each managed record as the provider has it and as each authoritative server answers.

    Examples:
      failover dns show shop
      failover dns show --json | jq '.sites[].records'
    """
    from failover.dns.show import show_dns

    query_timeout = timeout
    loaded = load()
    if site is None and not any(s.dns for s in loaded.config.sites.values()):
        if json_out:
            emit_json({"sites": [], "note": "no site has dns"})
        else:
            echo("no site has `dns`: the tool manages no records; nothing to show", err=True)
        return
    store = read_store(loaded)
    try:
        entries = show_dns(loaded, site, store=store, query_timeout=query_timeout)
    finally:
        if store is not None:
            store.close()
    if json_out:
        emit_json({"sites": entries})
    else:
        for entry in entries:
            _print_entry(entry)
    errors = [e["error"] for e in entries if e["error"]]
    if errors:
        raise FailoverError(
            errors[0] if len(errors) == 1 else f"{len(errors)} sites: " + "; ".join(errors)
        )


def _print_entry(entry: dict[str, Any]) -> None:
    typer.echo(f"{entry['site']}: zone {entry['zone']} at {entry['provider']}")
    for record in entry["records"]:
        if record["provider"] is None:
            have = "(no such record)" if entry["error"] is None else "(provider not read)"
            points = ""
        else:
            have = ",".join(record["provider"]) + (f" ttl {record['ttl']}" if record["ttl"] else "")
            points = f" -> {record['endpoint']}" if record["endpoint"] else " -> unknown value"
        typer.echo(f"  {record['name']} {record['type']}: {have}{points}")
        if record["ttl"] and record["ttl"] > entry["max_ttl"]:
            typer.echo(
                f"    ! TTL {record['ttl']}s is longer than max_ttl {entry['max_ttl']}s: users "
                "would follow a failover only that late"
            )
        for answer in record["nameservers"]:
            if answer["error"]:
                seen = f"error: {answer['error']}"
            else:
                seen = ",".join(answer["values"] or []) or "(no record)"
                if answer["ttl"] is not None:
                    seen += f" ttl {answer['ttl']}"
                if record["provider"] is not None:
                    seen += "" if answer["ok"] else "  (differs from the provider)"
            typer.echo(f"    {answer['server']}: {seen}")
    last = entry.get("last_switch")
    if last:
        typer.echo(
            f"  last switch: {last['from_endpoint'] or '?'} -> {last['to_endpoint']}, "
            f"{last['outcome']}"
            + (
                ""
                if last["verified"] is None
                else ", verified"
                if last["verified"]
                else ", NOT verified"
            )
        )
    if entry["error"]:
        typer.echo(f"  error: {entry['error']}", err=True)


@dns_app.command("set")
def set_(
    site: str = typer.Argument(..., help="The site whose records to switch."),
    to: str | None = typer.Option(
        None, "--to", metavar="ENDPOINT", help="The endpoint to point the records at."
    ),
    undo: bool = typer.Option(
        False,
        "--undo",
        help="Instead of --to: put back exactly the values the last switch replaced (kept in "
        "the state).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply the plan (otherwise only show it)."),
    force: bool = typer.Option(
        False, "--force", help="Overwrite records that hold no endpoint's value (changed by hand)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the plan and result as JSON."),
    deadline: str | None = typer.Option(
        None,
        "--deadline",
        metavar="DURATION",
        help="How long to wait for every authoritative server to serve the new values "
        "[default: the site's dns.verify_deadline].",
    ),
) -> None:
    """Point a site's DNS records at an endpoint: show the plan, apply with --yes, verify.

    Examples:
      failover dns set shop --to standby           # the plan only
      failover dns set shop --to standby --yes --deadline 2m
      failover dns set shop --undo --yes           # put back what the last switch replaced
    """
    from failover.dns.apply import switch_site_dns, undo_site_dns
    from failover.dns.plan import format_plan

    if (to is None) == (not undo):
        raise UsageError("give either --to ENDPOINT or --undo")
    flags = Confirm(yes=yes, dry_run=False, json_out=json_out)
    seconds = duration_flag("--deadline", deadline)
    loaded = load()
    shown: dict[str, Any] = {}

    def on_plan(plan: Any) -> None:
        shown["plan"] = plan
        flags.show(format_plan(plan))

    store: Store | None
    if yes:
        store = open_store(loaded, lock=True, role="dns set")
    elif undo:
        store = read_store(loaded)
        if store is None:
            raise UsageError(f"no state at {loaded.state_path}: no switch to undo")
    else:
        store = None
    options: dict[str, Any] = {
        "apply": yes,
        "force": force,
        "deadline": seconds,
        "on_plan": on_plan,
    }
    try:
        if undo:
            assert store is not None
            result = undo_site_dns(loaded, site, store, **options)
        else:
            assert to is not None
            result = switch_site_dns(loaded, site, to, store, **options)
    except UnsafePlan:
        if json_out and "plan" in shown:
            emit_json({"plan": shown["plan"].to_dict(), "apply": None, "verify": None})
        raise
    finally:
        if store is not None:
            store.close()
    if json_out:
        emit_json(result.to_dict())
    elif yes:
        _describe_applied(result)
    elif result.plan.verdict == "noop":
        echo("nothing to change: every record already points at " + result.plan.target)
    else:
        echo("dry run: nothing changed (add --yes to apply)")
    _raise_if_not_served(site, result)


def _describe_applied(result: Any) -> None:
    from failover.dns.verify import format_verify

    applied = result.applied
    if result.plan.verdict == "noop":
        echo("nothing to change: every record already points at " + result.plan.target)
    elif applied is not None:
        synced = (
            ""
            if applied.synced is None
            else ", provider reports it done"
            if applied.synced
            else f" ({applied.detail})"
        )
        echo(f"applied in {applied.seconds:.2f}s{synced}")
    checked = result.verification
    if checked is not None:
        state = "all serve the new values" if checked.ok else "NOT all serve the new values"
        echo(f"authoritative servers after {checked.seconds:.2f}s: {state}")
        for line in format_verify(checked):
            echo(line)


def _raise_if_not_served(site: str, result: Any) -> None:
    report = result.verification
    if report is not None and not report.ok:
        failing = sorted({a.server for a in report.failing})
        raise FailoverError(
            f"site {site}: the provider holds the new values, but {len(failing)} "
            f"authoritative server(s) do not serve them yet: {', '.join(failing)}",
            hint="check again with `failover dns show`; a secondary may be slow to transfer",
        )
