"""Every pruner of `tune.pruner` prunes for real, under every sklearn fidelity, in a small deterministic study.

The study runs in process as the trial worker drives it (`trials.job._reporter`): the
objective reports each step to the Optuna trial and stops when `should_prune()` says so. A pruner
that never prunes, or a fidelity whose objective stops reporting, leaves no PRUNED trial and fails here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from tunedag.config import Config
from tunedag.data import Prepared
from tunedag.objective import TrialPruned, evaluate
from tunedag.samplers import build_pruner, build_sampler, fidelity_steps
from tunedag.space import suggest

pytestmark = pytest.mark.usefixtures("quiet_optuna")

N_TRIALS = 12  # every pruner prunes a trial and completes another by trial 7 under every fidelity (seed 3)
STEPS = 4
RF_SPACE = {
    "n_estimators": {"type": "int", "low": 4, "high": 12},
    "max_depth": {"type": "int", "low": 1, "high": 6},
    "max_features": {"type": "categorical", "choices": [1, "sqrt", 0.5]},
}
PRUNERS = {
    "median": {"name": "median", "n_startup_trials": 3},
    "percentile": {"name": "percentile", "percentile": 40.0, "n_startup_trials": 3},
    "successive_halving": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3},
    "hyperband": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
}
FIDELITIES = {
    "folds": ({"kind": "folds"}, STEPS),
    "train_fraction": ({"kind": "train_fraction", "fractions": [0.1, 0.3, 0.6, 1.0]}, 0),
    "ensemble_size": ({"kind": "ensemble_size", "param": "n_estimators", "steps": STEPS}, 0),
}


def run_study(cfg: Config, prep: Prepared, n_trials: int = N_TRIALS) -> tuple[optuna.Study, dict[int, int]]:
    """Drive `n_trials` trials ask/tell with the configured sampler and pruner; return the study and each pruned trial's step."""
    study = optuna.create_study(directions=cfg.tune.directions, sampler=build_sampler(cfg), pruner=build_pruner(cfg))
    pruned_at: dict[int, int] = {}
    for _ in range(n_trials):
        trial = study.ask()
        params = suggest(trial, cfg.families)

        def report(step: int, value: float, trial: optuna.Trial = trial) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        try:
            outcome = evaluate(cfg, prep, params, report)
        except TrialPruned as stop:
            pruned_at[trial.number] = stop.step
            study.tell(trial, state=TrialState.PRUNED)
            continue
        study.tell(trial, outcome.values)
    return study, pruned_at


def config(make_config, pruner: dict[str, Any], fidelity: dict[str, Any], cv_folds: int) -> Config:
    return make_config(
        {
            "seed": 3,
            "data.name": "breast_cancer",
            "data.cv_folds": cv_folds,
            "model.estimator": "sklearn.ensemble.RandomForestClassifier",
            "model.fixed": {"n_jobs": 1},
            "search_space": RF_SPACE,
            "tune.metric": "roc_auc",
            "tune.sampler": {"name": "random"},
            "tune.pruner": pruner,
            "tune.fidelity": fidelity,
        }
    )


@pytest.mark.parametrize("fidelity", list(FIDELITIES))
@pytest.mark.parametrize("pruner", list(PRUNERS))
def test_every_pruner_prunes_under_every_fidelity(make_config, prepare_sklearn, pruner: str, fidelity: str) -> None:
    kind, cv_folds = FIDELITIES[fidelity]
    cfg = config(make_config, PRUNERS[pruner], kind, cv_folds)
    assert fidelity_steps(cfg) == STEPS
    study, pruned_at = run_study(cfg, prepare_sklearn("breast_cancer", seed=3, cv_folds=cv_folds))

    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned, f"{pruner} pruned none of {N_TRIALS} trials under fidelity {fidelity}"
    assert complete, "the best trials run to the end"
    assert len(pruned) + len(complete) == N_TRIALS
    for t in pruned:  # stopped at the step the pruner said, before the last one, having reported every step up to it
        assert sorted(t.intermediate_values) == list(range(1, pruned_at[t.number] + 1))
        assert pruned_at[t.number] < STEPS
    for t in complete:  # a complete trial reported every step
        assert sorted(t.intermediate_values) == list(range(1, STEPS + 1))


def test_the_median_pruner_prunes_exactly_the_trials_below_the_median(make_config, prepare_sklearn) -> None:
    """The rule, not only a count: a trial stops at the first step where its best value so far is below the median
    of the complete earlier trials at that step (once 3 have completed), and never before."""
    kind, cv_folds = FIDELITIES["train_fraction"]
    cfg = config(make_config, PRUNERS["median"], kind, cv_folds)
    study, pruned_at = run_study(cfg, prepare_sklearn("breast_cancer", seed=3))
    assert pruned_at
    for t in study.trials:
        complete = [e for e in study.trials[: t.number] if e.state == TrialState.COMPLETE]
        expected = None
        for step in range(1, STEPS):
            best = max(v for s, v in t.intermediate_values.items() if s <= step)
            if len(complete) >= 3 and best < float(np.median([e.intermediate_values[step] for e in complete])):
                expected = step
                break
        assert pruned_at.get(t.number) == expected, (t.number, t.intermediate_values)


def test_no_pruner_prunes_nothing(make_config, prepare_sklearn) -> None:
    kind, cv_folds = FIDELITIES["train_fraction"]
    cfg = config(make_config, {"name": "none"}, kind, cv_folds)
    study, pruned_at = run_study(cfg, prepare_sklearn("breast_cancer", seed=3), n_trials=6)
    assert not pruned_at and all(t.state == TrialState.COMPLETE for t in study.trials)
