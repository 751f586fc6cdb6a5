"""Which function carries out each step named in a plan. The table imports the step modules
(they import only the model), so nothing that fills it has to be imported for its effects."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from failover.errors import UsageError
from failover.runs.model import StepFn

# What ends a run of a kind that fails differently from a move (a drill: over at once,
# cleaned up, its own notice): fn(loaded, store, notifier, run, step, message, interrupted).
FailureFn = Callable[..., None]


@cache
def _table() -> dict[str, StepFn]:
    from failover.runs.steps import common, drill, migrate

    return {
        "preflight": common.step_preflight,
        "final_backup": common.step_final_backup,
        "provision": migrate.step_provision,
        "wait_ssh": migrate.step_wait_ssh,
        "ensure_restic": migrate.step_ensure_restic,
        "restore": common.step_restore,
        "after_restore": common.step_after_restore,
        "recheck": common.step_recheck,
        "switch_dns": common.step_switch_dns,
        "activate": common.step_activate,
        "verify_dns": common.step_verify_dns,
        "notify": common.step_notify,
        "verify_current": drill.step_verify_current,
        "cleanup": drill.step_cleanup,
        "drill_result": drill.step_drill_result,
    }


def failure_handler(kind: str) -> FailureFn | None:
    if kind == "drill":
        from failover.runs.steps import drill

        return drill.drill_failed
    return None


def step_impl(name: str) -> StepFn:
    try:
        return _table()[name]
    except KeyError:
        raise UsageError(f"no implementation of step {name!r}") from None
