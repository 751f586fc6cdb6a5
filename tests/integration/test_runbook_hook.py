"""The agent's failover hook against a real state file (no network: the run's execution is
handed to a recording spawn): a failed manual run gives way to an automatic failover, and
only to that."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from failover.config.load import parse_config
from failover.hooks import HookContext
from failover.notify import Notifier
from failover.runs.auto import failover_hook
from failover.runs.journal import get_run, open_run, start_run
from failover.runs.plan import plan_run
from failover.store import Store
from failover.watch.health import HealthState

CONFIG = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 192.0.2.10}
      standby: {address: 192.0.2.20}
    checks: [{type: tcp, port: 22}]
    policy: {interval: 10s, down_after: 30s, up_after: 30s, cooldown: 0, auto_failover: true}
"""


@pytest.fixture
def world(tmp_path: Path) -> Any:
    loaded = parse_config(CONFIG, str(tmp_path / "f.yaml"), env={})
    store = Store.open(tmp_path / "state.db", lock=True)
    store.ensure_active("shop", "primary")
    spawned: list[str] = []

    def spawn(key: str, _fn: Any) -> bool:
        spawned.append(key)
        return True

    def ctx() -> HookContext:
        return HookContext(loaded, store, Notifier([]), None, spawn=spawn, daemon=True)

    def health(endpoint: str, status: str) -> None:
        state = HealthState(
            status=status,
            since=time.time() - 60,  # type: ignore[arg-type]
            last_ts=time.time(),
            streak_ok=status == "up",
            streak_start=time.time() - 60,
            streak_count=6,
        )
        store.record_observation(
            "shop", endpoint, time.time(), status == "up", state.to_dict(), None, None
        )

    def failed_manual_run() -> int:
        site = loaded.config.sites["shop"]
        run = start_run(store, plan_run("shop", site, "switch", "primary", "standby"), "manual")
        with store.transaction() as c:
            c.execute(
                "UPDATE runs SET status='failed', owner=NULL, detail='recheck: no' WHERE id=?",
                (run.id,),
            )
        return run.id

    yield type(
        "World",
        (),
        {
            "ctx": staticmethod(ctx),
            "health": staticmethod(health),
            "failed_manual_run": staticmethod(failed_manual_run),
            "store": store,
            "spawned": spawned,
        },
    )
    store.close()


def test_a_failed_manual_run_gives_way_to_an_automatic_failover(world: Any) -> None:
    manual = world.failed_manual_run()
    world.health("primary", "down")
    world.health("standby", "up")
    failover_hook(world.ctx())
    old = get_run(world.store, manual)
    assert old is not None and old.status == "abandoned"
    assert old.detail is not None and "superseded by an automatic failover" in old.detail
    new = open_run(world.store, "shop")
    assert new is not None and (new.kind, new.trigger, new.target) == (
        "failover",
        "auto",
        "standby",
    )
    assert world.spawned == ["run-shop"]


def test_without_an_outage_a_failed_manual_run_is_left_to_a_person(world: Any) -> None:
    manual = world.failed_manual_run()
    world.health("primary", "up")
    world.health("standby", "up")
    failover_hook(world.ctx())
    run = get_run(world.store, manual)
    assert run is not None and run.status == "failed"
    assert world.spawned == []
    assert world.store.get_meta(f"notified:gave-up:{manual}")  # a person was told, once
