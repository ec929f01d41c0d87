"""The trial loop's decision and the stop rules, without Prefect, MLflow or a study."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tunedag.stopping import Decision, Snapshot, StopRules, decide, is_surplus


def _rules(started: float = 0.0, **tune) -> StopRules:
    base = dict(
        n_trials=10,
        max_failed_trials=2,
        parallelism=2,
        timeout=None,
        target=None,
        patience=None,
        directions=["maximize"],
        resolved_direction="maximize",
    )
    return StopRules(SimpleNamespace(tune=SimpleNamespace(**{**base, **tune})), started=started)


def _snap(**kw) -> Snapshot:
    base = dict(started=(0, 1, 2), finished=3, best=(1, 0.9), since_best=1, ours_running=0, failures=0)
    return Snapshot(**{**base, **kw})


def test_launches_while_budget_parallelism_and_rules_allow():
    assert decide(_snap(), _rules(), now=1.0) == Decision("launch")


def test_waits_when_its_own_trials_fill_the_parallelism():
    assert decide(_snap(ours_running=2), _rules(), now=1.0).action == "wait"


def test_budget_is_global_stop_when_finished_wait_while_others_run():
    full = tuple(range(10))
    assert decide(_snap(started=full, finished=10), _rules(), 1.0) == Decision("stop", "n_trials 10 reached")
    assert decide(_snap(started=full, finished=8), _rules(), 1.0).action == "wait"  # two run in other workers


def test_failures_stop_only_beyond_the_allowed_count():
    assert decide(_snap(failures=2), _rules(), 1.0).action == "launch"
    assert decide(_snap(failures=3), _rules(), 1.0) == Decision("stop", "3 failed trials (tune.max_failed_trials 2)")


def test_interruption_stops_before_anything_else():
    assert decide(_snap(interrupted=True, failures=99), _rules(), 1.0) == Decision("stop", "interrupted")


def test_grid_and_manual_queue_exhausted():
    assert decide(_snap(grid_left=0), _rules(), 1.0).reason == "grid exhausted"
    assert decide(_snap(grid_left=1), _rules(), 1.0).action == "launch"
    assert decide(_snap(queued=0), _rules(), 1.0).reason == "every tune.enqueue configuration evaluated"
    assert decide(_snap(queued=2), _rules(), 1.0).action == "launch"


def test_a_finite_space_the_study_holds_whole_stops_even_with_budget_left():
    assert decide(_snap(space_left=0), _rules(), 1.0).reason.startswith("search space exhausted")
    assert decide(_snap(space_left=1), _rules(), 1.0).action == "launch"
    assert decide(_snap(space_left=0, ours_running=1), _rules(), 1.0).action == "stop"  # the loop waits for its running ones


def test_a_sampler_stuck_on_held_configurations_that_random_draws_cannot_pass_stops_the_loop():
    assert decide(_snap(stuck=True), _rules(), 1.0).reason.startswith("no new configuration")
    assert decide(_snap(stuck=False), _rules(), 1.0).action == "launch"


def test_timeout_counts_from_the_start():
    rules = _rules(started=100.0, timeout=30)
    assert decide(_snap(), rules, now=129.9).action == "launch"
    assert decide(_snap(), rules, now=130.0) == Decision("stop", "timeout of 30 s reached")


@pytest.mark.parametrize(
    "direction, value, reached",
    [("maximize", 0.95, True), ("maximize", 0.94, False), ("minimize", 0.95, True), ("minimize", 0.96, False)],
)
def test_target_is_reached_in_the_study_direction(direction, value, reached):
    rules = _rules(target=0.95, directions=[direction], resolved_direction=direction)
    assert (rules.verdict(_snap(best=(4, value)), 1.0) == "target 0.95 reached by trial 4") is reached


def test_patience_counts_finished_trials_after_the_best_exactly():
    rules = _rules(patience=3)
    assert rules.verdict(_snap(since_best=2), 1.0) is None
    assert rules.verdict(_snap(since_best=3), 1.0) == "no improvement in 3 trials (patience 3)"


def test_target_and_patience_do_not_apply_to_multi_objective_studies():
    rules = _rules(target=0.5, patience=1, directions=["maximize", "minimize"])
    assert rules.verdict(_snap(since_best=5), 1.0) is None


def test_no_complete_trial_yet_no_patience_or_target():
    assert _rules(target=0.0, patience=1).verdict(_snap(best=None, since_best=9), 1.0) is None


def test_a_trial_asked_beyond_the_budget_is_surplus():
    started = (0, 1, 2, 3)  # 4 started, budget 3: the one numbered 3 is the surplus
    assert not is_surplus(started, 3, 2)
    assert is_surplus(started, 3, 3)
    assert not is_surplus(started, 4, 3)
