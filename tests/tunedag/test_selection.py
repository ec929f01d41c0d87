"""Choosing the final trial from a Pareto front, and the top-K distinct trials for an ensemble."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from tunedag.config_search import SelectionConfig
from tunedag.selection import select_from_front, top_k_trials

MAX_MIN = ["maximize", "minimize"]  # e.g. [roc_auc, predict_latency_ms]


def trial(
    number: int, *values: float, params: dict[str, Any] | None = None, state: TrialState = TrialState.COMPLETE
) -> FrozenTrial:
    """A finished trial with the given number, objective values and params (default: unique per number)."""
    params = {"x": float(number)} if params is None else params
    dists = {k: FloatDistribution(-1e6, 1e6) if isinstance(v, float) else CategoricalDistribution([v]) for k, v in params.items()}
    made = optuna.trial.create_trial(
        state=state, values=list(values) if state == TrialState.COMPLETE else None, params=params, distributions=dists
    )
    made.number = number
    return made


def rule(name: str, **kwargs: Any) -> SelectionConfig:
    return SelectionConfig(rule=name, **kwargs)


@pytest.fixture
def front() -> list[FrozenTrial]:
    """Accuracy (max) against latency (min); trial 3 repeats trial 0's values exactly."""
    return [trial(0, 0.95, 10.0), trial(1, 0.94, 5.0), trial(2, 0.90, 1.0), trial(3, 0.95, 10.0)]


def numbers(trials: list[FrozenTrial]) -> list[int]:
    return [t.number for t in trials]


# --- best_primary -------------------------------------------------------------------------------


def test_best_primary_takes_best_metric_and_lowest_number_on_full_tie(front):
    assert select_from_front(front, MAX_MIN, rule("best_primary")).number == 0
    assert select_from_front(front[::-1], MAX_MIN, rule("best_primary")).number == 0


def test_best_primary_breaks_primary_tie_by_next_objective():
    tied = [trial(0, 0.95, 12.0), trial(5, 0.95, 10.0), trial(1, 0.93, 1.0)]
    assert select_from_front(tied, MAX_MIN, rule("best_primary")).number == 5


def test_best_primary_with_minimized_primary():
    front = [trial(0, 3.0, 1.0), trial(1, 2.5, 9.0), trial(2, 2.7, 4.0)]  # rmse, model_size_kb
    assert select_from_front(front, ["minimize", "minimize"], rule("best_primary")).number == 1


# --- within_tolerance ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [
        (0.0, 0),  # only the best accuracy qualifies; its duplicate (trial 3) loses on number
        (0.009, 0),  # 0.94 is 0.01 below: just outside
        (0.01, 1),  # exactly at the edge counts as within (despite 0.95 - 0.94 > 0.01 in floats)
        (0.05, 2),  # every trial qualifies: the fastest wins
    ],
)
def test_within_tolerance_picks_fastest_near_best(front, tolerance, expected):
    assert select_from_front(front, MAX_MIN, rule("within_tolerance", tolerance=tolerance)).number == expected


def test_within_tolerance_breaks_ties_by_third_objective_then_number():
    directions = ["maximize", "minimize", "minimize"]  # accuracy, latency, size
    front = [trial(4, 0.95, 2.0, 50.0), trial(1, 0.945, 2.0, 30.0), trial(2, 0.949, 2.0, 30.0), trial(3, 0.80, 0.1, 1.0)]
    # 4, 1, 2 are within 0.01 and tie on latency; 1 and 2 tie on size; 2 has the better accuracy.
    assert select_from_front(front, directions, rule("within_tolerance", tolerance=0.01)).number == 2
    same = [trial(7, 0.95, 2.0, 30.0), trial(6, 0.95, 2.0, 30.0)]
    assert select_from_front(same, directions, rule("within_tolerance", tolerance=0.01)).number == 6


def test_within_tolerance_with_minimized_primary():
    front = [trial(0, 2.50, 9.0), trial(1, 2.52, 4.0), trial(2, 2.60, 1.0)]  # rmse, model_size_kb
    directions = ["minimize", "minimize"]
    assert select_from_front(front, directions, rule("within_tolerance", tolerance=0.05)).number == 1
    assert select_from_front(front, directions, rule("within_tolerance", tolerance=0.01)).number == 0


# --- weighted -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        # scaled accuracy: 1, 0.8, 0, 1; scaled latency: 0, 5/9, 1, 0
        ([1.0, 1.0], 1),
        ([1.0, 0.0], 0),  # trials 0 and 3 tie: lower number
        ([0.0, 1.0], 2),
        ([3.0, 1.0], 0),  # 3.0 vs 2.4 + 0.56
    ],
)
def test_weighted_scales_each_objective_over_the_front(front, weights, expected):
    assert select_from_front(front, MAX_MIN, rule("weighted", weights=weights)).number == expected


def test_weighted_constant_objective_neither_fails_nor_decides():
    front = [trial(3, 0.90, 7.0), trial(1, 0.95, 7.0), trial(2, 0.93, 7.0)]
    assert select_from_front(front, MAX_MIN, rule("weighted", weights=[1.0, 5.0])).number == 1
    # A constant objective adds the same to every trial (no division by zero); all tie, the lowest number wins.
    assert select_from_front(front, MAX_MIN, rule("weighted", weights=[0.0, 1.0])).number == 1
    assert select_from_front(front[::2], MAX_MIN, rule("weighted", weights=[0.0, 1.0])).number == 2


def test_weighted_with_minimized_primary():
    front = [trial(0, 2.0, 10.0), trial(1, 3.0, 1.0), trial(2, 2.2, 6.0)]  # rmse, size
    directions = ["minimize", "minimize"]
    assert select_from_front(front, directions, rule("weighted", weights=[1.0, 0.1])).number == 0
    assert select_from_front(front, directions, rule("weighted", weights=[0.1, 1.0])).number == 1
    # rmse scaled: 1, 0, 0.8; size scaled: 0, 1, 4/9 -> 1.0, 1.0, 1.244
    assert select_from_front(front, directions, rule("weighted", weights=[1.0, 1.0])).number == 2


# --- every rule ---------------------------------------------------------------------------------

RULES = [rule("best_primary"), rule("within_tolerance", tolerance=0.01), rule("weighted", weights=[1.0])]


@pytest.mark.parametrize("chosen_by", RULES, ids=lambda r: r.rule)
def test_single_objective(chosen_by):
    assert select_from_front([trial(4, 0.8)], ["maximize"], chosen_by).number == 4
    several = [trial(0, 0.8), trial(1, 0.9), trial(2, 0.9)]
    assert select_from_front(several, ["maximize"], chosen_by).number == 1
    assert select_from_front(several, ["minimize"], chosen_by).number == 0


@pytest.mark.parametrize("chosen_by", RULES, ids=lambda r: r.rule)
def test_empty_front_is_refused(chosen_by):
    with pytest.raises(ValueError, match="empty"):
        select_from_front([], ["maximize"], chosen_by)


def test_mismatched_inputs_are_refused(front):
    with pytest.raises(ValueError, match="weights"):
        select_from_front(front, MAX_MIN, rule("weighted", weights=[1.0]))
    with pytest.raises(ValueError, match="expected 3"):
        select_from_front(front, [*MAX_MIN, "minimize"], rule("best_primary"))
    with pytest.raises(ValueError, match="directions"):
        select_from_front(front, ["maximize", "lower"], rule("best_primary"))


def test_works_on_a_real_study_front():
    study = optuna.create_study(directions=MAX_MIN)
    dist = {"x": FloatDistribution(0, 10)}
    for x, values in enumerate([(0.90, 1.0), (0.95, 10.0), (0.94, 5.0), (0.80, 5.0)]):
        study.add_trial(optuna.trial.create_trial(values=list(values), params={"x": float(x)}, distributions=dist))
    front = study.best_trials
    assert sorted(numbers(front)) == [0, 1, 2]  # trial 3 is dominated by trial 2
    assert select_from_front(front, MAX_MIN, rule("best_primary")).number == 1
    assert select_from_front(front, MAX_MIN, rule("within_tolerance", tolerance=0.01)).number == 2


# --- top_k_trials -------------------------------------------------------------------------------


@pytest.fixture
def history() -> list[FrozenTrial]:
    return [
        trial(0, 0.90),
        trial(1, 0.95),
        trial(2, float("nan"), state=TrialState.FAIL),
        trial(3, 0.0, state=TrialState.PRUNED),
        trial(4, 0.80),
        trial(5, 0.95),
        trial(6, 0.70),
    ]


def test_top_k_maximize_orders_by_value_then_number(history):
    assert numbers(top_k_trials(history, "maximize", 3)) == [1, 5, 0]
    assert numbers(top_k_trials(history[::-1], "maximize", 3)) == [1, 5, 0]


def test_top_k_minimize(history):
    assert numbers(top_k_trials(history, "minimize", 2)) == [6, 4]


def test_top_k_returns_fewer_when_the_study_has_fewer(history):
    assert numbers(top_k_trials(history, "maximize", 50)) == [1, 5, 0, 4, 6]  # failed and pruned skipped


def test_top_k_skips_repeated_configurations():
    rf = {"n_estimators": 100, "criterion": "gini"}
    trials = [
        trial(0, 0.95, params=rf),
        trial(1, 0.94, params={"n_estimators": 50, "criterion": "gini"}),
        trial(2, 0.95, params=dict(rf)),  # the same configuration evaluated again
        trial(3, 0.93, params={"n_estimators": 100, "criterion": "entropy"}),
    ]
    assert numbers(top_k_trials(trials, "maximize", 3)) == [0, 1, 3]


def test_top_k_refuses_bad_arguments(history):
    with pytest.raises(ValueError, match="k must"):
        top_k_trials(history, "maximize", 0)
    with pytest.raises(ValueError, match="directions"):
        top_k_trials(history, "up", 2)


# --- a tie on tune.metric goes to the better calibrated trial -----------------------------


def _with_metrics(made: FrozenTrial, **metrics: float) -> FrozenTrial:
    made.user_attrs["metrics"] = metrics
    return made


def test_a_tie_on_the_primary_goes_to_the_lowest_log_loss():
    from tunedag.selection import TIE_BREAK, best_with_tie_break

    trials = [
        _with_metrics(trial(0, 1.0), log_loss=0.32),
        _with_metrics(trial(1, 1.0), log_loss=0.10),
        _with_metrics(trial(2, 0.99), log_loss=0.01),
        trial(3, 1.0),
    ]
    assert best_with_tie_break(trials, "maximize", TIE_BREAK["classification"]).number == 1
    assert best_with_tie_break(trials, "maximize", None).number == 0  # no tie-break: the lowest number
    assert best_with_tie_break(trials[2:], "minimize", "log_loss").number == 2


def test_validation_scheme_names_what_the_values_are():
    from tunedag.selection import validation_scheme

    assert (validation_scheme(5), validation_scheme(0)) == ("cv5", "holdout")


def test_score_prefix_is_cv_for_k_fold_and_val_for_the_validation_split():
    from tunedag.selection import score_prefix

    assert [score_prefix(k) for k in (0, 2, 3, 10)] == ["val", "cv", "cv", "cv"]
