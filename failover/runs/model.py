"""What a run is: its plan, its journaled form, the decision to start one, and what a step
gets and returns. Pure types, a leaf: every module of the area imports it, it imports none
of them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from failover.errors import FailoverError

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.config.models import Site
    from failover.notify import Notifier
    from failover.store import Store

Kind = Literal["failover", "failback", "switch", "migrate", "drill"]
OPEN = ("running", "failed")  # the statuses of an open run (one per site at most)
# A drill ends passed or flunked: over either way (a flunked drill is not resumed, the next
# one starts afresh), so neither is an open status, and neither is "done" (no drill counts
# as the site's last move).
DRILL_PASSED, DRILL_FLUNKED = "passed", "flunked"


def done_status(kind: str) -> str:
    """The status of a run that completed all its steps."""
    return DRILL_PASSED if kind == "drill" else "done"


@dataclass(frozen=True)
class StepPlan:
    name: str
    title: str
    skip: str | None = None  # why the step does nothing in this run


@dataclass(frozen=True)
class RunPlan:
    site: str
    kind: Kind
    source: str
    target: str
    steps: tuple[StepPlan, ...]
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = [f"{self.kind} of site {self.site}: {self.source} -> {self.target}"]
        for i, step in enumerate(self.steps, 1):
            suffix = f"  (skipped: {step.skip})" if step.skip else ""
            out.append(f"  {i}. {step.title}{suffix}")
        out += [f"  ! {w}" for w in self.warnings]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "kind": self.kind,
            "source": self.source,
            "target": self.target,
            "warnings": list(self.warnings),
            "steps": [{"name": s.name, "title": s.title, "skip": s.skip} for s in self.steps],
        }


@dataclass(frozen=True)
class Decision:
    action: Literal["none", "failover", "failback", "alarm"]
    target: str | None = None
    reason: str = ""


@dataclass
class Run:
    """A run as the journal holds it."""

    id: int
    site: str
    kind: Kind
    trigger: str
    source: str
    target: str
    status: str
    created: float
    finished: float | None
    attempts: int
    options: dict[str, Any]
    detail: str | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    owner: int | None = None

    @property
    def owner_alive(self) -> bool:
        """Another live process is executing this run (a manual `switch` while the agent
        runs, say): leave it alone."""
        if self.owner is None or self.owner == os.getpid():
            return False
        try:
            os.kill(self.owner, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def step_planned(self, name: str) -> bool:
        """The run has step `name` and does not skip it."""
        return any(s["name"] == name and s["status"] != "skipped" for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "id",
                "site",
                "kind",
                "trigger",
                "source",
                "target",
                "status",
                "created",
                "finished",
                "attempts",
                "options",
                "detail",
                "steps",
            )
        }


class StepFailed(FailoverError):
    """A step could not do its work; the message says what and why."""


@dataclass
class StepContext:
    """What a step gets: the config, the state, the notifier, its run, and what earlier
    steps handed on."""

    loaded: LoadedConfig
    store: Store
    notifier: Notifier
    run: Run
    data: dict[str, Any]
    progress: Callable[[str], None]

    @property
    def site(self) -> Site:
        return self.loaded.config.sites[self.run.site]


StepOut = tuple[str, dict[str, Any]]  # a one-line detail, data for later steps
StepFn = Callable[[StepContext], StepOut]
