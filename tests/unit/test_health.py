"""The health state machine: thresholds, hysteresis, the window rule, and the guarantee
that the same history gives the same answer however it was collected."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from failover.config.models import FailureWindow, Policy
from failover.watch.health import HealthState, evaluate, step

POLICY = Policy(interval=10, down_after=30, up_after=20)


def run(pattern: str, policy: Policy = POLICY, interval: float = 10.0, start: float = 1000.0):
    """'+' success, '-' failure, '?' inconclusive, one per interval."""
    obs = [
        (start + i * interval, {"+": True, "-": False, "?": None}[c]) for i, c in enumerate(pattern)
    ]
    return evaluate(obs, policy)


def statuses(pattern: str, policy: Policy = POLICY) -> list[str]:
    state = HealthState()
    out = []
    for i, c in enumerate(pattern):
        state, _ = step(state, 1000.0 + i * 10, {"+": True, "-": False, "?": None}[c], policy)
        out.append(state.status)
    return out


def test_first_success_is_up_first_failure_is_suspect():
    assert run("+")[0].status == "up"
    assert run("-")[0].status == "suspect"
    assert HealthState().status == "unknown"


def test_down_only_after_failing_continuously_for_down_after():
    # failures at t=0,10,20 span 20s < 30s; the fourth (t=30) reaches 30s.
    assert statuses("+---") == ["up", "suspect", "suspect", "suspect"]
    assert statuses("+----") == ["up", "suspect", "suspect", "suspect", "down"]


def test_a_success_resets_the_failure_streak():
    assert "down" not in statuses("+---+---+---")


def test_recovery_needs_up_after_and_more_than_one_success():
    s = statuses("-----+++")
    assert s[3] == "down"
    assert s[5] == "recovering"  # one success never ends a down
    assert s[6] == "recovering"  # 10s < up_after
    assert s[7] == "up"  # 20s of successes


def test_recovery_interrupted_goes_back_to_down():
    assert statuses("-----++-")[-1] == "down"


def test_zero_up_after_still_needs_two_successes():
    policy = Policy(interval=10, down_after=0, up_after=0)
    assert statuses("-+", policy) == ["down", "recovering"]
    assert statuses("-++", policy)[-1] == "up"


def test_inconclusive_rounds_change_nothing():
    with_gaps, _ = run("+--??--")
    assert with_gaps.status == "down"  # the streak spans the inconclusive rounds
    plain, _ = run("+????")
    assert plain.status == "up"


def test_window_rule_catches_intermittent_failures():
    policy = Policy(
        interval=10, down_after=300, up_after=20, window=FailureWindow(failures=3, within=60)
    )
    assert run("-+-+-", policy)[0].status == "down"
    assert run("-++++-++++-", policy)[0].status != "down"  # spread over more than 60s


def test_incident_open_and_close_are_reported():
    _, changes = run("+-----+++")
    kinds = [(c.from_status, c.to_status, c.incident) for c in changes]
    assert ("suspect", "down", "open") in kinds
    assert ("recovering", "up", "close") in kinds


def test_replayed_or_old_observations_are_ignored():
    state, _ = run("+----")
    again, change = step(state, state.last_ts or 0, True, POLICY)
    assert again == state and change is None


def test_state_round_trips_through_json_dict():
    state, _ = run("+---++-")
    assert HealthState.from_dict(state.to_dict()) == state


# --- properties ------------------------------------------------------------------------

outcomes = st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=80)
policies = st.builds(
    Policy,
    interval=st.just(10.0),
    down_after=st.sampled_from([0.0, 10.0, 30.0, 60.0, 120.0]),
    up_after=st.sampled_from([0.0, 10.0, 30.0, 60.0]),
)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(2, 60), policy=policies)
def test_alternating_results_never_flap(n, policy):
    """Alternating success/failure never goes up->down->up: with down_after longer than
    one interval it never goes down at all, and once down it never comes back up."""
    pattern = "".join("+-"[i % 2] for i in range(n))
    history = statuses(pattern, policy)
    if policy.down_after > policy.interval:
        assert "down" not in history
    if "down" in history:
        assert "up" not in history[history.index("down") :]


@settings(max_examples=300, deadline=None)
@given(prefix=outcomes, policy=policies)
def test_a_single_success_never_ends_a_down(prefix, policy):
    obs = [(1000.0 + 10 * i, ok) for i, ok in enumerate(prefix)]
    state, _ = evaluate(obs, policy)
    if state.status == "down":
        after, _ = step(state, (state.last_ts or 0) + 10, True, policy)
        assert after.status == "recovering"


@settings(max_examples=200, deadline=None)
@given(history=outcomes, policy=policies, split=st.integers(0, 80))
def test_same_history_same_answer_however_collected(history, policy, split):
    """A daemon folding observations one by one and a cron run that resumes from the
    persisted state reach the same state as folding the whole history at once."""
    obs = [(1000.0 + 10 * i, ok) for i, ok in enumerate(history)]
    whole, _ = evaluate(obs, policy)
    first, _ = evaluate(obs[:split], policy)
    resumed = HealthState.from_dict(first.to_dict())
    rest, _ = evaluate(obs[split:], policy, resumed)
    assert rest == whole


@settings(max_examples=300, deadline=None)
@given(history=outcomes, policy=policies)
def test_down_requires_failing_for_down_after(history, policy):
    obs = [(1000.0 + 10 * i, ok) for i, ok in enumerate(history)]
    _, changes = evaluate(obs, policy)
    for change in changes:
        if change.to_status != "down" or change.from_status == "recovering":
            continue
        seen = [(ts, ok) for ts, ok in obs if ok is not None and ts <= change.ts]
        trailing = []
        for ts, ok in reversed(seen):
            if ok:
                break
            trailing.append(ts)
        assert change.ts - min(trailing) >= policy.down_after
