"""How runs look to a person: the `status` section of a site and a run's steps as lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from failover.humanize import local_time
from failover.runs import journal
from failover.runs.model import Run
from failover.watch.health import HealthState

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.store import Store


def status_section(loaded: LoadedConfig, store: Store | None, site_name: str) -> dict[str, Any]:
    """For `failover status`: the open or last run, and the old-primary warning."""
    if store is None or not journal.has_runs(store):
        return {}
    warnings: list[str] = []
    current = journal.open_run(store, site_name)
    if current is not None and current.kind == "drill":
        current = None  # the drill's own section (failover.runs.drill) shows it
    last = journal.last_done_run(store, site_name)
    out: dict[str, Any] = {}
    if current is not None:
        failed = [s for s in current.steps if s["status"] == "failed"]
        state = (
            f"FAILED at {failed[0]['name']}: {failed[0]['detail']}"
            if failed
            else "in progress (or interrupted; resumes when the agent runs)"
        )
        # Shown once: as a warning (the text lists warnings; "run" keeps the data for --json).
        out["run"] = current.to_dict()
        warnings.append(f"run #{current.id} ({current.kind} to {current.target}) is open: {state}")
    elif last is not None:
        out["run"] = {
            **last.to_dict(),
            "summary": f"last run #{last.id}: {last.kind} {last.source} -> "
            f"{last.target}, done {local_time(last.finished)}",
        }
    row = store.active_endpoint(site_name)
    site = loaded.config.sites[site_name]
    if row and row["active"] not in site.endpoints:
        warnings.append(
            f"the active endpoint {row['active']} is not in the config, so it is not watched: "
            f"add its block to sites.{site_name}.endpoints (`failover migrate` printed it; "
            "--write-config adds it)"
        )
    if last is not None and last.kind == "failover" and row and row["active"] != last.source:
        st = HealthState.from_dict(store.health_state(site_name, last.source))
        fenced = store.get_meta(f"fenced:{last.id}")
        if st.streak_ok or fenced:
            warnings.append(
                f"{last.source} came back but serves the data from before the failover at "
                f"{local_time(last.created)}; it is not active"
                + (f" ({fenced})" if fenced else "")
                + f". Fail back with `failover switch {site_name} --to {last.source}`"
            )
    out["warnings"] = warnings
    return out


def describe_steps(run: Run) -> Sequence[str]:
    out = []
    for s in run.steps:
        took = ""
        if s["started"] and s["finished"]:
            took = f" ({s['finished'] - s['started']:.1f}s)"
        out.append(f"  {s['status']:<8} {s['name']}{took}: {s['detail'] or s['title']}")
    return out
