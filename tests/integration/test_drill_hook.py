"""The agent's drill hook and the failover hook's way with drills, against a real state file
(no network: work handed to spawn is recorded, not run): a due drill starts once per period
and waits while the site is busy; an interrupted drill is resumed, three times at most; a
drill gives way to an outage at once and the failover starts in the same round; status and
validate warn when no drill passed within 2 x every."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from failover.config.load import parse_config
from failover.hooks import HookContext
from failover.notify import Event, Notifier
from failover.runs import journal
from failover.runs.auto import failover_hook
from failover.runs.drill import drill_hook, overdue_warnings, status_section
from failover.runs.model import DRILL_PASSED
from failover.runs.plan import plan_drill
from failover.store import Store
from failover.watch.health import HealthState

pytestmark = pytest.mark.integration

CONFIG = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 192.0.2.10, ssh: {user: root}}
      standby: {address: 192.0.2.20, ssh: {user: root}}
    checks: [{type: tcp, port: 22}]
    policy: {interval: 10s, down_after: 30s, up_after: 30s, cooldown: 0, auto_failover: true}
    failover: {drill: {every: 1h}}
"""


class Recorder(Notifier):
    def __init__(self) -> None:
        super().__init__([])
        self.events: list[Event] = []

    def send(self, event: Event) -> None:
        self.events.append(event)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.loaded = parse_config(CONFIG, str(tmp_path / "f.yaml"), env={})
        self.store = Store.open(tmp_path / "state.db", lock=True)
        self.store.ensure_active("shop", "primary")
        self.spawned: list[str] = []
        self.notifier = Recorder()

    def ctx(self) -> HookContext:
        def spawn(key: str, _fn: Any) -> bool:
            self.spawned.append(key)
            return True

        return HookContext(self.loaded, self.store, self.notifier, None, spawn=spawn, daemon=True)

    def health(self, endpoint: str, status: str) -> None:
        now = time.time()
        state = HealthState(
            status=status,  # type: ignore[arg-type]
            since=now - 60,
            last_ts=now,
            streak_ok=status == "up",
            streak_start=now - 60,
            streak_count=6,
        )
        self.store.record_observation(
            "shop", endpoint, now, status == "up", state.to_dict(), None, None
        )

    def drills(self) -> list[Any]:
        return journal.drills(self.store, "shop")

    def finish(self, run_id: int, status: str = DRILL_PASSED, ago: float = 0.0) -> None:
        journal.close_run(self.store, run_id, status, "RTO 3s")
        with self.store.transaction() as c:
            c.execute("UPDATE runs SET created = created - ? WHERE id=?", (ago, run_id))


@pytest.fixture
def world(tmp_path: Path) -> Any:
    w = World(tmp_path)
    w.health("primary", "up")
    w.health("standby", "up")
    yield w
    w.store.close()


def test_a_due_drill_starts_once_per_period(world: World) -> None:
    drill_hook(world.ctx())
    (first,) = world.drills()
    assert (first.kind, first.trigger, first.status, first.target) == (
        "drill",
        "schedule",
        "running",
        "standby",
    )
    assert world.spawned == ["drill-shop"]
    drill_hook(world.ctx())  # still open: nothing new (spawn never runs one key twice)
    world.finish(first.id)
    drill_hook(world.ctx())  # passed just now: not due for an hour
    assert len(world.drills()) == 1
    world.finish(first.id, ago=3601)
    drill_hook(world.ctx())
    assert len(world.drills()) == 2 and set(world.spawned) == {"drill-shop"}


@pytest.mark.parametrize("busy", ["primary suspect", "standby active", "open run"])
def test_a_due_drill_waits_while_the_site_is_busy(world: World, busy: str) -> None:
    site = world.loaded.config.sites["shop"]
    if busy == "primary suspect":
        world.health("primary", "suspect")
    elif busy == "standby active":
        world.store.set_active("shop", "standby")
    else:
        from failover.runs.plan import plan_run

        journal.start_run(world.store, plan_run("shop", site, "switch", "primary", "standby"), "x")
    drill_hook(world.ctx())
    assert world.drills() == [] and world.spawned == []


def test_an_interrupted_drill_is_resumed_three_times_at_most(world: World) -> None:
    site = world.loaded.config.sites["shop"]
    run = journal.start_run(world.store, plan_drill("shop", site, "primary", "standby"), "manual")
    journal.update_run(world.store, run.id, owner=2**22 + 12345, attempts=1)  # a dead process
    drill_hook(world.ctx())
    assert world.spawned == ["drill-shop"]
    journal.update_run(world.store, run.id, attempts=3)
    drill_hook(world.ctx())
    done = journal.get_run(world.store, run.id)
    assert done is not None and done.status == "flunked" and "interrupted 3 times" in done.detail
    assert [e.title for e in world.notifier.events] == [
        "[shop] drill onto standby FAILED: interrupted 3 times; not resumed again"
    ]


def test_a_drill_gives_way_to_an_outage_and_the_failover_starts_at_once(world: World) -> None:
    site = world.loaded.config.sites["shop"]
    drill = journal.start_run(world.store, plan_drill("shop", site, "primary", "standby"), "x")
    failover_hook(world.ctx())  # no outage: the drill is left alone
    assert journal.run_status(world.store, drill.id) == "running" and world.spawned == []
    world.health("primary", "down")
    failover_hook(world.ctx())
    abandoned = journal.get_run(world.store, drill.id)
    assert abandoned is not None and abandoned.status == "abandoned"
    assert abandoned.detail == "primary is down; the real failover takes precedence"
    current = journal.open_run(world.store, "shop")
    assert current is not None and (current.kind, current.target) == ("failover", "standby")
    assert world.spawned == ["run-shop"]


def test_status_and_validate_warn_when_no_drill_passed_within_twice_every(world: World) -> None:
    assert overdue_warnings(world.loaded, world.store) == [
        "site shop: no drill has passed yet, with drill.every 1h: run `failover drill shop`"
    ]
    drill_hook(world.ctx())  # the schedule is seen now: not overdue yet
    (run,) = world.drills()
    world.finish(run.id, ago=3 * 3600)
    section = status_section(world.loaded, world.store, "shop")
    assert section["drill"]["summary"].startswith("last drill #1 onto standby passed 3h ago")
    assert any("no drill passed in the last 2h" in w for w in section["warnings"]), section
    assert overdue_warnings(world.loaded, world.store)[0].startswith(
        "site shop: no drill passed in the last 2h"
    )
    world.finish(run.id, ago=-3 * 3600 + 60)
    assert overdue_warnings(world.loaded, world.store) == []
