"""Choosing trials from a finished study: the final configuration, and the top-K for an ensemble.

Pure functions over Optuna's `FrozenTrial`; every tie is broken by trial number, so the same
study always yields the same choice. A trial's `values` are ordered [tune.metric, *tune.objectives].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from optuna.trial import FrozenTrial, TrialState

from tunedag.config_search import SelectionConfig

_SIGN = {"maximize": 1.0, "minimize": -1.0}


def select_from_front(front: list[FrozenTrial], directions: list[str], rule: SelectionConfig) -> FrozenTrial:
    """The final trial chosen from a Pareto front (`study.best_trials`) by `rule`.

    Args:
        front: The non-dominated trials; a single-objective study may pass its one best trial.
        directions: "maximize" / "minimize" per objective, in the order of `trial.values`.
        rule: `best_primary`, `within_tolerance` (absolute `tolerance`) or `weighted` (`weights`).

    Returns:
        The chosen trial; ties go to the lowest trial number.

    Raises:
        ValueError: The front is empty, a trial has the wrong number of values, or the
            weights do not match the objectives.
    """
    if not front:
        raise ValueError("the Pareto front is empty: no trial completed")
    signs = _signs(directions)
    _check_values(front, len(signs))
    if rule.rule == "best_primary":
        return min(front, key=lambda t: _lexicographic(t, signs, range(len(signs))))
    if rule.rule == "within_tolerance":
        return _within_tolerance(front, signs, rule.tolerance)
    return _weighted(front, signs, rule.weights)


def top_k_trials(trials: list[FrozenTrial], direction: str, k: int) -> list[FrozenTrial]:
    """The `k` best complete trials by primary value, one per distinct configuration.

    Args:
        trials: Any trials of a study (failed, pruned and running ones are skipped).
        direction: The direction of the primary value, `trial.values[0]`.
        k: How many to return at most (fewer if the study has fewer distinct configurations).

    Returns:
        Trials best first; equal values in trial-number order. A trial whose params equal
        those of a trial already chosen is skipped.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")
    sign = _signs([direction])
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    chosen: list[FrozenTrial] = []
    for trial in sorted(done, key=lambda t: _lexicographic(t, sign, [0])):
        if all(trial.params != c.params for c in chosen):
            chosen.append(trial)
        if len(chosen) == k:
            break
    return chosen


# The metric that breaks a tie on tune.metric (e.g. several trials at ROC AUC 1.0): the better calibrated model wins.
TIE_BREAK = {"classification": "log_loss", "regression": "rmse"}


def best_with_tie_break(trials: list[FrozenTrial], direction: str, tie_break: str | None) -> FrozenTrial:
    """The best complete trial by primary value; among trials tied on it, the lowest `tie_break` metric.

    Args:
        trials: Any trials of a single-objective study; each may hold its validation metrics in
            `user_attrs["metrics"]` (a trial without the tie-break metric ranks after those with it).
        direction: The direction of the primary value.
        tie_break: A metric to minimise among tied trials (`TIE_BREAK[task]`), or None.

    Returns:
        The chosen trial; a remaining tie goes to the lowest trial number.
    """
    best = top_k_trials(trials, direction, 1)
    if not best:
        raise ValueError("no trial completed")
    top = best[0].values[0]
    tied = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.values and math.isclose(t.values[0], top, rel_tol=0, abs_tol=1e-12)
    ]

    def secondary(t: FrozenTrial) -> tuple[float, int]:
        value = (t.user_attrs.get("metrics") or {}).get(tie_break) if tie_break else None
        return (math.inf if value is None or not math.isfinite(value) else float(value), t.number)

    return min(tied, key=secondary)


def best_or_untuned(
    trials: list[FrozenTrial], direction: str, untuned: Callable[[FrozenTrial], bool], tie_break: str | None
) -> FrozenTrial:
    """The best complete trial, where a tuned trial that does not beat an untuned baseline loses to it.

    Among the trials tied on the primary value (within 1e-12), an untuned one (`untuned(trial)`:
    an estimator's own defaults) wins, then the lowest `tie_break` metric (`best_with_tie_break`),
    then the lowest trial number.
    """
    best = best_with_tie_break(trials, direction, None)
    tied = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.values and math.isclose(t.values[0], best.values[0], rel_tol=0, abs_tol=1e-12)
    ]
    baselines = [t for t in tied if untuned(t)]
    return best_with_tie_break(baselines or tied, direction, tie_break)


def validation_scheme(cv_folds: int) -> str:
    """What a trial's scores are: `cv<k>` (the mean over k folds of every non-test row) or `holdout` (one split)."""
    return f"cv{cv_folds}" if cv_folds >= 2 else "holdout"


def score_prefix(cv_folds: int) -> str:
    """The prefix of a trial's score names: `cv` when `cv_folds` >= 2, else `val`.

    A trial's scores are `<prefix>_<metric>` (`cv_roc_auc`: the mean over the folds; `val_roc_auc`: the
    validation split), its step history `<prefix>_<metric>_by_step`, the study's best `best_<prefix>_<metric>`.
    Whatever reads a score back by name builds the name here from the same `data.cv_folds`.
    """
    return "cv" if cv_folds >= 2 else "val"


def best_score_key(summary: dict) -> str:
    """The name of the study's best score in a tune summary's outputs: `best_<prefix>_<metric>`.

    A summary without `score_prefix` predates the `cv_` names: its scores are named `val_`.
    """
    return f"best_{summary.get('score_prefix', 'val')}_{summary['metric']}"


def _signs(directions: Sequence[str]) -> list[float]:
    unknown = [d for d in directions if d not in _SIGN]
    if not directions or unknown:
        raise ValueError(f"directions must be 'maximize' or 'minimize', one per objective (got {list(directions)})")
    return [_SIGN[d] for d in directions]


def _check_values(front: list[FrozenTrial], n: int) -> None:
    for trial in front:
        if trial.values is None or len(trial.values) != n:
            raise ValueError(f"trial {trial.number} has values {trial.values}, expected {n} (one per direction)")


def _lexicographic(trial: FrozenTrial, signs: list[float], order: Sequence[int]) -> tuple[float, ...]:
    """A sort key, smaller is better: the objectives in `order`, then the trial number."""
    return (*(-signs[i] * trial.values[i] for i in order), trial.number)


def _within_tolerance(front: list[FrozenTrial], signs: list[float], tolerance: float) -> FrozenTrial:
    """Best on the 2nd objective (then 3rd, ..., then primary) among trials near the best primary."""
    best = max(signs[0] * t.values[0] for t in front)
    near = [t for t in front if _at_most(best - signs[0] * t.values[0], tolerance)]
    order = [*range(1, len(signs)), 0]
    return min(near, key=lambda t: _lexicographic(t, signs, order))


def _at_most(gap: float, tolerance: float) -> bool:
    """`gap <= tolerance`, counting a gap equal up to float rounding (0.95 - 0.94 vs 0.01) as within."""
    return gap <= tolerance or math.isclose(gap, tolerance, rel_tol=1e-9, abs_tol=1e-12)


def _weighted(front: list[FrozenTrial], signs: list[float], weights: list[float]) -> FrozenTrial:
    """Highest weighted sum of objectives scaled to [0, 1] over the front (1 is best)."""
    if len(weights) != len(signs):
        raise ValueError(f"weighted selection needs {len(signs)} weights, one per objective (got {weights})")
    columns = [_scaled([signs[i] * t.values[i] for t in front]) for i in range(len(signs))]
    totals = [sum(w * col[row] for w, col in zip(weights, columns)) for row in range(len(front))]
    # Rounded so that sums equal up to float error tie, and the lower trial number wins.
    best = min(range(len(front)), key=lambda r: (-round(totals[r], 12), front[r].number))
    return front[best]


def _scaled(gains: list[float]) -> list[float]:
    """Min-max scale values where larger is better; a constant column scales to 1 everywhere."""
    low, high = min(gains), max(gains)
    if high == low:
        return [1.0] * len(gains)
    return [(g - low) / (high - low) for g in gains]
