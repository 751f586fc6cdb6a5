"""The flow every command that changes something shares (switch, migrate, dns set): show
the plan, stop there unless --yes (saying how to apply it), apply, describe the outcome.
`--dry-run` only shows the plan; `--json` prints one JSON document instead of text."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.cli.context import echo, emit_json, progress_to_stderr

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.runs.model import Run
    from failover.store import Store


@dataclass(frozen=True)
class Confirm:
    yes: bool
    dry_run: bool
    json_out: bool

    def __post_init__(self) -> None:
        from failover.errors import UsageError

        if self.yes and self.dry_run:
            raise UsageError("--dry-run and --yes contradict each other: pick one")

    @property
    def apply(self) -> bool:
        return self.yes and not self.dry_run

    def say(self, line: str = "") -> None:
        """A line of the text output (nothing under --json)."""
        if not self.json_out:
            echo(line)

    def show(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.say(line)

    def stop_unless_applying(self, payload: dict[str, Any], *, more_flags: str = "") -> bool:
        """After the plan was shown: True when it is to be applied. Otherwise say that
        nothing changed and how to apply it (or print `payload` under --json)."""
        if self.apply:
            return True
        if self.json_out:
            emit_json({**payload, "applied": False})
        elif self.dry_run:
            echo("dry run: nothing changed")
        else:
            echo(f"nothing changed: run again with --yes{more_flags} to apply")
        return False


def refuse_if_busy(run: Run | None, site: str) -> None:
    """A run another live process executes (the agent, another switch) is left to it."""
    from failover.errors import UnsafePlan

    if run is not None and run.owner_alive:
        raise UnsafePlan(
            f"run #{run.id} of {site} is being executed by process {run.owner} (the agent?)",
            hint="wait for it: `failover status` shows its progress",
        )


def execute_run(loaded: LoadedConfig, store: Store, run: Run, flags: Confirm) -> Run:
    """Execute (or resume) the run with progress on stderr, then list its steps."""
    from failover.notify import Notifier
    from failover.runs.engine import execute
    from failover.runs.show import describe_steps

    notifier = Notifier(loaded.config.notify, loaded.config.sites)
    done = execute(
        loaded, store, notifier, run, progress=None if flags.json_out else progress_to_stderr
    )
    notifier.flush(30)
    flags.show(describe_steps(done))
    return done
