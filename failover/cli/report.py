"""`failover report`: incidents as timelines, uptime per endpoint per month against a target."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from failover.cli.context import JSON_VERSION, echo, load, open_store
from failover.errors import FailoverError, UsageError


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
    fmt: str = typer.Option(
        "markdown", "--format", metavar="FORMAT", help="markdown, json or html."
    ),
    out: str | None = typer.Option(None, "--out", "-o", metavar="PATH", help="Write to this file."),
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
    if fmt not in ("markdown", "json", "html"):
        if fmt == "pdf":
            raise UsageError(
                "--format pdf: not built in; open the html report in a browser and print "
                "it to PDF (its print styles are made for that)"
            )
        raise UsageError(f"--format: expected markdown, json or html, got {fmt!r}")
    if not 0 < target < 100:
        raise UsageError("--target: a percentage between 0 and 100, such as 99.9")
    start = parse_since(since)
    loaded = load()
    if site is not None and site not in loaded.config.sites:
        raise UsageError(f"no site {site!r} in {loaded.path}")
    with open_store(loaded, readonly=True) as store:
        data = report_mod.build_report(
            loaded, store, site, start, target / 100, charts=fmt == "html"
        )
    if fmt == "json":
        text = json.dumps({"version": JSON_VERSION, **data}, indent=2, default=str) + "\n"
    elif fmt == "html":
        from failover.show.report_html import render_html

        text = render_html(data)
    else:
        text = report_mod.render_markdown(data) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise FailoverError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    echo(f"wrote {out}", err=True)
