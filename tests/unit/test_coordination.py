"""The pure rules of several watchers: the group's verdict from watcher verdicts, freshness
without comparing clocks, the lease and its takeover; and the config of a group (the
watcher's name, voter-only watchers hold no credentials)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from failover.config.load import parse_config
from failover.coordination.lease import Lease, may_take_over, observe_leader, renew_due
from failover.coordination.quorum import (
    Rule,
    WatcherVerdict,
    group_verdict,
    is_fresh,
    may_turn_down,
    observe,
    verdict_of,
)
from failover.errors import ConfigError, UsageError

W = ["a", "b", "c"]
RULE = Rule(3, 2, 0)


def v(name: str, verdict: str, fresh: bool = True) -> WatcherVerdict:
    return WatcherVerdict(name, verdict, verdict, fresh)  # type: ignore[arg-type]


def test_down_needs_a_quorum_of_fresh_down_and_no_up() -> None:
    assert group_verdict(RULE, W, [v("a", "down"), v("b", "down"), v("c", "down")]).status == "down"
    assert (
        group_verdict(RULE, W, [v("a", "down"), v("b", "down"), v("c", "unknown")]).status == "down"
    )
    one_up = group_verdict(RULE, W, [v("a", "down"), v("b", "down"), v("c", "up")])
    assert one_up.status == "disagree" and one_up.disagreement  # max_up 0
    partitioned = group_verdict(RULE, W, [v("a", "up"), v("b", "up"), v("c", "down")])
    assert partitioned.status == "up" and partitioned.disagreement
    stale = group_verdict(RULE, W, [v("a", "down"), v("b", "down", fresh=False)])
    assert stale.status == "unknown" and stale.stale == ("b", "c")


def test_the_quorum_counts_configured_watchers_not_reachable_ones() -> None:
    # two of three are gone: the one left cannot decide alone
    assert group_verdict(RULE, W, [v("a", "down")]).status == "unknown"


@given(st.lists(st.sampled_from(["up", "down", "unknown", "stale"]), min_size=3, max_size=3))
def test_down_for_the_group_exactly_when_the_rule_says(kinds: list[str]) -> None:
    verdicts = [
        v(n, k if k != "stale" else "down", fresh=k != "stale")
        for n, k in zip(W, kinds, strict=True)
    ]
    status = group_verdict(RULE, W, verdicts).status
    assert (status == "down") == (kinds.count("down") >= 2 and kinds.count("up") == 0)
    assert (status == "up") == (kinds.count("up") >= 2)


def test_the_group_may_turn_down_when_the_watchers_short_of_it_are_failing() -> None:
    # the leader sees it down, the others are failing but not yet for down_after
    waiting = group_verdict(RULE, W, [v("a", "down"), v("b", "unknown"), v("c", "unknown")])
    assert waiting.status == "unknown"
    assert may_turn_down(RULE, waiting, ["b", "c"]) and may_turn_down(RULE, waiting, ["c"])
    assert not may_turn_down(RULE, waiting, [])  # nobody failing: nothing is coming
    assert not may_turn_down(RULE, waiting, ["a"])  # only watchers that hold no verdict count
    # one watcher sees it up (max_up 0): another down verdict would not decide
    up = group_verdict(RULE, W, [v("a", "down"), v("b", "up"), v("c", "unknown")])
    assert not may_turn_down(RULE, up, ["c"])
    # a stale watcher is not coming; the fresh one alone is short of the quorum
    stale = group_verdict(RULE, W, [v("a", "unknown"), v("b", "down", fresh=False)])
    assert not may_turn_down(RULE, stale, ["a", "b"])
    down = group_verdict(RULE, W, [v("a", "down"), v("b", "down"), v("c", "unknown")])
    assert not may_turn_down(RULE, down, ["c"])  # down already


@given(
    st.lists(st.sampled_from(["up", "down", "unknown", "stale"]), min_size=3, max_size=3),
    st.sets(st.sampled_from(W)),
)
def test_may_turn_down_exactly_when_the_turning_watchers_down_would_decide(
    kinds: list[str], turning: set[str]
) -> None:
    verdicts = [
        v(n, k if k != "stale" else "down", fresh=k != "stale")
        for n, k in zip(W, kinds, strict=True)
    ]
    group = group_verdict(RULE, W, verdicts)
    coming = {n for n, k in zip(W, kinds, strict=True) if k == "unknown" and n in turning}
    then = [
        v(n, "down" if n in coming else k if k != "stale" else "down", fresh=k != "stale")
        for n, k in zip(W, kinds, strict=True)
    ]
    would = group_verdict(RULE, W, then).status == "down"
    assert may_turn_down(RULE, group, turning) == (group.status != "down" and would)


def test_what_a_watcher_publishes() -> None:
    assert verdict_of("down", True) == "down" and verdict_of("recovering", True) == "down"
    assert verdict_of("up", True) == "up"
    assert verdict_of("suspect", True) == "unknown"  # failing, not yet for down_after
    assert verdict_of("down", False) == "unknown"  # its own canaries fail


def test_freshness_is_the_sequence_advancing_on_the_readers_clock() -> None:
    first = observe(None, 5, "boot1", now=100.0, engine_age=None)
    assert not is_fresh(first, 100.0, 3.0)  # first sight, no engine clock: not yet
    moved = observe(first, 6, "boot1", now=101.0, engine_age=None)
    assert is_fresh(moved, 103.9, 3.0) and not is_fresh(moved, 104.1, 3.0)
    same = observe(moved, 6, "boot1", now=110.0, engine_age=None)
    assert same == moved and not is_fresh(same, 110.0, 3.0)  # stuck: stale
    restarted = observe(same, 1, "boot2", now=111.0, engine_age=None)
    assert is_fresh(restarted, 111.0, 3.0)  # a new process counts from its first write


def test_the_engines_clock_places_a_first_sight_conservatively() -> None:
    # S3 says the write is 2 s old (1 s resolution): it may be as young as 1 s
    seen = observe(None, 5, "b", now=100.0, engine_age=2.0)
    assert seen.advanced_at == 99.0
    old = observe(None, 5, "b", now=100.0, engine_age=30.0)
    assert not is_fresh(old, 100.0, 3.0)


def test_the_lease_counts_from_before_the_renewal_was_sent() -> None:
    lease = Lease("a", 7, "etag", ttl=4.0, margin=1.0, sent_at=50.0)
    assert lease.valid(52.9) and not lease.valid(53.0)
    assert renew_due(lease, 51.0, every=1.0) and not renew_due(lease, 50.5, every=1.0)
    renewed = lease.renewed("etag2", 52.0)
    assert renewed.epoch == 7 and renewed.valid_until == 55.0


@given(st.floats(0.5, 60), st.floats(0.1, 0.5), st.floats(0, 10), st.floats(0, 5), st.floats(0, 3))
def test_a_follower_never_takes_over_before_the_holder_stopped_acting(
    ttl: float, margin_part: float, delay: float, first_seen_after: float, engine_age: float
) -> None:
    """Real time: the holder sends a renewal at 0 (its sent_at); the engine stores it at
    `delay`; a follower first reads it `first_seen_after` later, and the engine says the write
    is `engine_age` old (truncated to seconds, so within 1 s of the truth)."""
    margin = ttl * margin_part
    holder = Lease("a", 1, "v1", ttl, margin, sent_at=0.0)
    seen_at = delay + first_seen_after
    told = max(0.0, min(first_seen_after, engine_age))  # the engine never says older than true
    seen = observe_leader(None, "v1", "a", 1, now=seen_at, engine_age=told)
    for t in [seen_at + x * ttl / 10 for x in range(30)]:
        if may_take_over(seen, t, ttl):
            assert not holder.valid(t)


def test_a_released_lease_is_free_at_once() -> None:
    seen = observe_leader(None, "v2", None, 3, now=10.0, engine_age=None)
    assert may_take_over(seen, 10.0, 30.0)


# --- the config of a group ------------------------------------------------------------------


def _config(tmp: Path, watchers: dict[str, object], **extra: object) -> str:
    data = {
        "coordination": {
            "engine": "s3",
            "watchers": watchers,
            "lease_ttl": "10s",
            "s3": {
                "bucket": "shared",
                "access_key_id": "${FOT_T_KEY}",
                "secret_access_key": "${FOT_T_SECRET}",
            },
            **extra,
        },
        "dns_providers": {
            "pdns": {"type": "libcloud", "driver": "powerdns", "key": "${FOT_T_DNS}"}
        },
        "sites": {
            "shop": {
                "hostname": "shop.example.test",
                "endpoints": {
                    "primary": {
                        "address": "192.0.2.1",
                        "ssh": {"key": str(tmp / "id_ed25519")},
                    },
                    "standby": {"address": "192.0.2.2"},
                },
                "checks": [{"type": "tcp", "port": 22, "timeout": "1s"}],
                "policy": {"interval": "2s"},
                "dns": {
                    "provider": "pdns",
                    "zone": "example.test",
                    "records": [{"name": "shop.example.test", "type": "A"}],
                },
            }
        },
    }
    return yaml.safe_dump(data)


ENGINE_ENV = {"FOT_T_KEY": "k", "FOT_T_SECRET": "s"}


def test_a_voter_only_watcher_must_hold_no_credentials(tmp_path: Path) -> None:
    text = _config(tmp_path, {"home": {}, "vps": {}, "cheap": {"can_act": False}})
    # on the voter's machine: no DNS key, no SSH key: fine, and the secret is marked absent
    loaded = parse_config(text, "f.yaml", env=ENGINE_ENV, watcher="cheap")
    assert loaded.watcher == "cheap"
    secret = loaded.config.dns_providers["pdns"].key
    assert secret.absent
    with pytest.raises(UsageError, match="not available on this watcher"):
        secret.reveal()
    # the DNS key is there, and so is the SSH key: refused, naming both
    (tmp_path / "id_ed25519").write_text("key")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml", env={**ENGINE_ENV, "FOT_T_DNS": "x"}, watcher="cheap")
    text_ = str(caught.value)
    assert "dns_providers.pdns.key" in text_ and "${FOT_T_DNS} is available here" in text_
    assert "endpoints.primary.ssh.key" in text_ and "can_act: false" in text_
    # an acting watcher needs them, as before
    with pytest.raises(ConfigError, match="FOT_T_DNS is not set"):
        parse_config(text, "f.yaml", env=ENGINE_ENV, watcher="home")
    # the engine's own keys are needed even by a voter
    with pytest.raises(ConfigError, match=r"coordination\.s3\.secret_access_key"):
        parse_config(text, "f.yaml", env={"FOT_T_KEY": "k"}, watcher="cheap")


def test_the_watcher_name_from_the_flag_the_environment_or_the_local_file(tmp_path: Path) -> None:
    text = _config(tmp_path, {"home": {}, "vps": {}})
    env = {**ENGINE_ENV, "FOT_T_DNS": "x"}
    assert parse_config(text, "f.yaml", env=env, base_dir=tmp_path).watcher is None
    (tmp_path / "watcher.yaml").write_text("watcher: vps\n")
    assert parse_config(text, "f.yaml", env=env, base_dir=tmp_path).watcher == "vps"
    assert (
        parse_config(
            text, "f.yaml", env={**env, "FAILOVER_WATCHER": "home"}, base_dir=tmp_path
        ).watcher
        == "home"
    )
    assert (
        parse_config(text, "f.yaml", env=env, base_dir=tmp_path, watcher="home").watcher == "home"
    )
    with pytest.raises(
        ConfigError,
        match=r"--watcher: watcher 'nope' is not one of coordination.watchers \(home, vps\)",
    ):
        parse_config(text, "f.yaml", env=env, watcher="nope")
    (tmp_path / "watcher.yaml").write_text("name: vps\n")
    with pytest.raises(ConfigError, match=r"watcher.yaml:1: expected one key, `watcher: NAME`"):
        parse_config(text, "f.yaml", env=env, base_dir=tmp_path)


def test_group_settings_are_checked(tmp_path: Path) -> None:
    env = {**ENGINE_ENV, "FOT_T_DNS": "x"}
    with pytest.raises(ConfigError, match="quorum 4 is more than the 3 watcher"):
        parse_config(_config(tmp_path, {"a": {}, "b": {}, "c": {}}, quorum=4), "f.yaml", env=env)
    with pytest.raises(ConfigError, match="no watcher has can_act: true"):
        parse_config(_config(tmp_path, {"a": {"can_act": False}}), "f.yaml", env=env)
    with pytest.raises(
        ConfigError, match=r"f.yaml:\d+: coordination.lease_ttl: lease_ttl minus its margin"
    ):
        parse_config(_config(tmp_path, {"a": {}}, lease_ttl="2s"), "f.yaml", env=env)
    loaded = parse_config(_config(tmp_path, {n: {} for n in "abcdefg"}), "f.yaml", env=env)
    assert loaded.config.coordination is not None
    assert loaded.config.coordination.quorum_count == 4
    assert loaded.config.coordination.max_up_count == 1


def test_without_a_coordination_section_nothing_of_it_is_loaded(tmp_path: Path) -> None:
    """A single agent pays nothing for groups: a `check` round with its hooks imports no
    coordination module and no engine adapter."""
    config = tmp_path / "failover.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state": str(tmp_path / "state.db"),
                "sites": {
                    "shop": {
                        "hostname": "shop.example.test",
                        "endpoints": {"primary": {"address": "127.0.0.1"}},
                        "checks": [{"type": "tcp", "port": 9, "timeout": "0.2s"}],
                        "policy": {"interval": "1s"},
                    }
                },
            }
        )
    )
    code = (
        "import sys\n"
        "from failover.cli.app import run\n"
        f"rc = run(['--config', {str(config)!r}, 'check'])\n"
        "rc2 = run(['--config', " + repr(str(config)) + ", 'status'])\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('failover.coordination', "
        "'providers.coordination', 'boto3', 'botocore')))\n"
        "print(rc, rc2, bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip().endswith("0 0 []"), out.stdout + out.stderr


def test_only_a_watcher_that_may_act_decides_when_following_the_group(tmp_path: Path) -> None:
    """The agent's stages give the session its decision for between rounds: the runs hook,
    which the round's own hooks share (one decision at a time); a voter gets none."""
    from failover.cli.stages import watch_stages
    from failover.coordination.session import LeaderNotifier
    from failover.notify import Notifier

    text = _config(tmp_path, {"home": {}, "vps": {}, "cheap": {"can_act": False}})
    acting = parse_config(text, "f.yaml", env={**ENGINE_ENV, "FOT_T_DNS": "x"}, watcher="home")
    hooks, notifier = watch_stages(acting, Notifier([]))
    assert isinstance(notifier, LeaderNotifier)
    decide = notifier.session.on_change
    assert decide is not None and decide in hooks
    voter = parse_config(text, "f.yaml", env=ENGINE_ENV, watcher="cheap")
    hooks, notifier = watch_stages(voter, Notifier([]))
    assert isinstance(notifier, LeaderNotifier) and notifier.session.on_change is None
