"""`failover backup run|list|verify|restore`. Only typer and the standard library at module
level: restic, pydantic and the store are imported when a command runs."""

from __future__ import annotations

import sys
import time
from typing import Any

import typer

from failover.cli.context import duration_option, echo, emit_json, load, open_store

backup_app = typer.Typer(
    help="Back up sites with restic, list snapshots, prove they restore, restore them.\n\n"
    "Examples:\n  failover backup run shop\n  failover backup verify shop",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    from failover.humanize import local_time

    return local_time(ts)


class _Progress:
    """restic's status lines on stderr: one updating line on a terminal (cleared before any
    log line, so that neither lands on the other), otherwise a line after FIRST seconds and
    then every EVERY seconds: a backup that is over quickly prints no lone `0.0%`."""

    FIRST = 10.0
    EVERY = 30.0

    def __init__(self, site: str) -> None:
        from failover.logs import before_log

        self.site = site
        self.tty = sys.stderr.isatty()
        self.last = time.monotonic() - self.EVERY + self.FIRST
        self.shown = False
        self._hooks = before_log
        self._hooks.append(self.clear)

    def __call__(self, part: str, msg: dict[str, Any]) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < self.EVERY:
            return
        pct = float(msg.get("percent_done") or 0) * 100
        done = msg.get("bytes_done") or 0
        total = msg.get("total_bytes") or 0
        if not self.tty and not done and not total:
            return  # nothing to say yet (restic still scanning)
        self.last = now
        line = (
            f"{self.site} {part}: {pct:5.1f}%  {_size(done)} / {_size(total)}  "
            f"{msg.get('files_done', 0)} files"
        )
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
            self.shown = True
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self.shown = False

    def end(self) -> None:
        self.clear()
        if self.clear in self._hooks:
            self._hooks.remove(self.clear)


@backup_app.command("run")
def run_cmd(
    site: str | None = typer.Argument(
        None, help="Only this site (default: every site with a backup set)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    wait: float = typer.Option(
        "0",
        "--wait",
        metavar="DURATION",
        parser=duration_option("--wait"),
        help="Wait this long (30s, 5m) for another run of the same repository to finish.",
    ),
) -> None:
    """Back up now: before commands, files, database dumps, after commands, retention.
    Progress on stderr; the outcome of each site on stdout.

    Examples:
      failover backup run shop
      failover backup run --wait 5m --json     # from cron, beside a running agent
    """
    from failover.backup.run import backup_sites, run_backup

    lock_wait = wait or 0.0
    loaded = load()
    sites = backup_sites(loaded, site)
    if not sites:
        _nothing(json_out, "results")
        return
    results = []
    with open_store(loaded) as store:
        for name in sites:
            progress = None if json_out else _Progress(name)
            result = run_backup(
                loaded, store, name, on_status=progress, lock_wait=lock_wait, check=False
            )
            if progress is not None:
                progress.end()
            results.append(result)
            if not json_out:
                if result.ok:
                    parts = ", ".join(
                        f"{k} {v.snapshot_id} (+{_size(v.data_added)})"
                        for k, v in result.parts.items()
                    )
                    typer.echo(
                        f"{name}: ok in {result.finished - result.started:.1f}s: {parts}"
                        + (
                            f"; {result.forgotten} snapshot(s) forgotten"
                            if result.forgotten
                            else ""
                        )
                    )
                    for warning in result.warnings:
                        typer.echo(f"{name}: warning: {warning}", err=True)
                else:
                    typer.echo(f"{name}: FAILED: {result.error}", err=True)
            if result.interrupted:
                break
    if json_out:
        emit_json({"results": [r.to_json() for r in results]})
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _nothing(json_out: bool, key: str) -> None:
    """No site has a backup set: say so (exit 0: there is nothing to do)."""
    if json_out:
        emit_json({key: [], "note": "no site has a backup set"})
    else:
        echo("no site has a backup set: nothing to do", err=True)


@backup_app.command("list")
def list_cmd(
    site: str | None = typer.Argument(None, help="Only this site."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Snapshots in each site's repository, with the backup's health.

    Examples:
      failover backup list shop
      failover backup list --json | jq '.sites[].snapshots[].short_id'
    """
    from failover.backup.hook import backup_status
    from failover.backup.run import backup_sites, list_snapshots

    loaded = load()
    sites = backup_sites(loaded, site)
    if not sites:
        _nothing(json_out, "sites")
        return
    out = []
    with open_store(loaded) as store:
        status = {s["site"]: s for s in backup_status(loaded, store)}
        for name in sites:
            snaps = list_snapshots(loaded, name)
            out.append({**status[name], "snapshots": [s.to_json() for s in snaps]})
    if json_out:
        emit_json({"sites": out})
        return
    for item in out:
        typer.echo(
            f"{item['site']}: {item['health']}  repository {item['repository']}  "
            f"last run {_when(item['last_attempt'])}"
            + ("" if item["last_attempt_ok"] is not False else " (failed)")
            + f"  last verified {_when(item['last_verify'])}"
            + ("" if item["last_verify_ok"] is not False else " (failed)")
        )
        for snap in item["snapshots"]:
            part = next((t[5:] for t in snap["tags"] if t.startswith("part:")), "?")
            typer.echo(
                f"  {snap['short_id']}  {_when(snap['time'])}  {part:<20} "
                f"{', '.join(snap['paths'])}"
            )
        if not item["snapshots"]:
            typer.echo("  no snapshots yet: `failover backup run` makes the first")


@backup_app.command("verify")
def verify_cmd(
    site: str | None = typer.Argument(None, help="Only this site."),
    sample: int | None = typer.Option(
        None,
        "--sample",
        metavar="N",
        help="Files to restore and compare (default: the set's verify_sample).",
    ),
    read_data_subset: str | None = typer.Option(
        None,
        "--read-data-subset",
        metavar="SUBSET",
        help="Also read this subset of the data (5%, 1/10).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """restic check, then a real test restore of a sample compared byte for byte; each
    step is shown on stderr as it starts.

    Examples:
      failover backup verify shop
      failover backup verify --read-data-subset 5% --json
    """
    from failover.backup.run import backup_sites
    from failover.backup.verify import verify_backup

    loaded = load()
    sites = backup_sites(loaded, site)
    if not sites:
        _nothing(json_out, "results")
        return
    results = []
    with open_store(loaded) as store:
        for name in sites:
            started = time.monotonic()

            def say(line: str, name: str = name, started: float = started) -> None:
                if not json_out:
                    echo(f"{name}: {line} ({time.monotonic() - started:.0f}s)", err=True)

            result = verify_backup(
                loaded, name, store, sample=sample, read_data_subset=read_data_subset, progress=say
            )
            results.append(result)
            if not json_out:
                good = sum(1 for f in result.files if f["ok"])
                if result.ok:
                    typer.echo(
                        f"{name}: ok: repository checks clean, {good}/{len(result.files)} "
                        "restored files identical to the snapshot"
                    )
                else:
                    typer.echo(f"{name}: FAILED: {result.error}", err=True)
                    for f in result.files:
                        if not f["ok"]:
                            typer.echo(f"  {f['path']}: {f.get('detail')}", err=True)
    if json_out:
        emit_json({"results": [r.to_json() for r in results]})
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@backup_app.command("restore")
def restore_cmd(
    site: str = typer.Argument(..., help="The site."),
    to: str = typer.Option(
        ...,
        "--to",
        metavar="PATH|ENDPOINT",
        help="A directory here, or the name of one of the site's endpoints (restored over SSH).",
    ),
    snapshot: str = typer.Option(
        "latest",
        "--snapshot",
        metavar="ID",
        help="Snapshot id (default: the newest of every part).",
    ),
    target: str = typer.Option(
        "/",
        "--target",
        metavar="PATH",
        help="With --to ENDPOINT: the directory on the server (/ puts files back where they were).",
    ),
    include: list[str] = typer.Option(
        None, "--include", metavar="PATH", help="Only these paths (repeatable)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Restore a site's backup into a directory, or onto a server over SSH.

    Examples:
      failover backup restore shop --to /tmp/shop-restore
      failover backup restore shop --to standby --include /srv/shop/uploads
    """
    from failover.backup.restore import restore_to_endpoint, restore_to_path
    from failover.backup.run import site_config

    loaded = load()
    cfg, _ = site_config(loaded, site)
    is_endpoint = to in cfg.endpoints and "/" not in to
    started = time.monotonic()
    if not json_out:
        where = f"{to}:{target}" if is_endpoint else to
        typer.echo(f"{site}: restoring {snapshot} to {where}...", err=True)

    def say(message: str) -> None:
        if not json_out:
            typer.echo(f"{site}: {message} ({time.monotonic() - started:.0f}s)", err=True)

    if is_endpoint:
        result = restore_to_endpoint(
            loaded, site, to, snapshot, target=target, include=include or None, progress=say
        )
    else:
        result = restore_to_path(
            loaded, site, to, snapshot=snapshot, include=include or None, progress=say
        )
    if json_out:
        emit_json(result.to_json())
    else:
        typer.echo(
            f"{site}: restored {', '.join(result.snapshots)} to "
            f"{(to + ':' + target) if is_endpoint else to} in "
            f"{time.monotonic() - started:.1f}s"
        )
