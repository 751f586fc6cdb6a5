"""`failover report`: incidents as timelines, uptime per endpoint per month against a target."""

from __future__ import annotations

import typer

from failover.cli.context import echo, emit_json, load, open_store
from failover.errors import UsageError


def parse_since(since: str | None) -> float:
    """--since YYYY-MM-DD (UTC) as a unix time; 0 without it."""
    from datetime import UTC, datetime

    if not since:
        return 0.0
    try:
        return datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise UsageError(f"--since: expected a date such as 2026-11-01, got {since!r}") from None


def report(
    site: str | None = typer.Argument(None, help="Only this site."),
    since: str | None = typer.Option(
        None, "--since", metavar="DATE", help="Start date (YYYY-MM-DD, UTC)."
    ),
    fmt: str = typer.Option("markdown", "--format", metavar="FORMAT", help="markdown or json."),
    target: float = typer.Option(
        99.9, "--target", metavar="PERCENT", help="Monthly uptime target in percent."
    ),
    json_out: bool = typer.Option(False, "--json", help="The same as --format json."),
) -> None:
    """Incidents as timelines, and uptime per endpoint per month against a target;
    maintenance is shown and does not count.

    Examples:
      failover report shop --since 2026-11-01 > november.md
      failover report --format json --target 99.95
    """
    from failover.show import report as report_mod

    fmt = "json" if json_out else fmt
    if fmt not in ("markdown", "json"):
        raise UsageError(f"--format: expected markdown or json, got {fmt!r}")
    if not 0 < target < 100:
        raise UsageError("--target: a percentage between 0 and 100, such as 99.9")
    start = parse_since(since)
    loaded = load()
    if site is not None and site not in loaded.config.sites:
        raise UsageError(f"no site {site!r} in {loaded.path}")
    with open_store(loaded, readonly=True) as store:
        data = report_mod.build_report(loaded, store, site, start, target / 100)
    if fmt == "json":
        emit_json(data)
    else:
        echo(report_mod.render_markdown(data))
