"""Per-epoch pruning must happen: networks and a `train_fn` in a small deterministic study with fidelity `epochs`.

The study runs in process as the trial worker drives it: every epoch (or `train_fn` step) is
reported to the Optuna trial, which stops it when the pruner says so. No `if pruned` guard:
a pruner that never prunes, or an objective that stops reporting epochs, fails here.
"""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from tests.tunedag.nets.custom_fns import TRAIN_FN
from tunedag.config import Config
from tunedag.data import Prepared
from tunedag.objective import TrialPruned, evaluate
from tunedag.samplers import build_pruner, build_sampler
from tunedag.space import suggest

pytestmark = pytest.mark.usefixtures("quiet_optuna")

EPOCHS = 6
NET = {
    "seed": 0,
    "data.name": "digits",
    "data.cv_folds": 0,
    "model.estimator": "tunedag.nets.TorchClassifier",
    "model.fixed": {"epochs": EPOCHS, "device": "cpu", "width": 16, "batch_size": 64, "early_stopping_patience": None},
    "model.preprocess": {"numeric_impute": "median", "scale": False, "max_categories": 20},
    "search_space": {"lr": {"type": "float", "low": 1e-5, "high": 0.05, "log": True}},
    "tune.metric": "accuracy",
    "tune.sampler": {"name": "random"},
    "tune.fidelity": {"kind": "epochs"},
}


def run_study(cfg: Config, prep: Prepared, n_trials: int) -> tuple[optuna.Study, dict[int, TrialPruned], dict[int, Any]]:
    """Ask/tell `n_trials` trials; return the study, each pruned trial's stop and each complete trial's outcome."""
    study = optuna.create_study(directions=cfg.tune.directions, sampler=build_sampler(cfg), pruner=build_pruner(cfg))
    stops, outcomes = {}, {}
    for _ in range(n_trials):
        trial = study.ask()

        def report(step: int, value: float, trial: optuna.Trial = trial) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        try:
            outcomes[trial.number] = evaluate(cfg, prep, suggest(trial, cfg.families), report)
        except TrialPruned as stop:
            stops[trial.number] = stop
            study.tell(trial, state=TrialState.PRUNED)
            continue
        study.tell(trial, outcomes[trial.number].values)
    return study, stops, outcomes


@pytest.mark.parametrize(
    "pruner",
    [
        {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
        {"name": "hyperband", "min_resource": 1, "max_resource": EPOCHS, "reduction_factor": 3},
    ],
    ids=["median", "hyperband"],
)
def test_a_network_is_pruned_per_epoch(make_config, prepare_sklearn, pruner: dict[str, Any]) -> None:
    cfg = make_config({**NET, "tune.pruner": pruner})
    study, stops, outcomes = run_study(cfg, prepare_sklearn("digits", seed=0), n_trials=8)

    assert stops, "some of 8 trials over a wide lr range are pruned per epoch"
    assert outcomes, "the best ones train every epoch"
    for number, stop in stops.items():
        assert 1 <= stop.step < EPOCHS
        assert sorted(study.trials[number].intermediate_values) == list(range(1, stop.step + 1))
        assert [len(series) for series in stop.curves.values()] == [stop.step] * len(stop.curves)  # curves up to the stop
        assert "val_loss" in stop.curves and "train_loss" in stop.curves
    for number, outcome in outcomes.items():
        assert len(outcome.curves["val_loss"]) == EPOCHS == len(study.trials[number].intermediate_values)


def curve(params: dict[str, Any], data: Any, reporter: Any) -> dict[str, float]:
    """A train_fn whose validation score climbs at the rate `speed` over `steps` steps (a learning curve, no data needed)."""
    for step in range(1, params["steps"] + 1):
        score = 1 - 0.5 ** (params["speed"] * step)
        reporter.log(step, {"val_score": score})
        reporter.report(step, score)
    return {"my_score": score}


def test_a_train_fn_is_pruned_per_step(make_config, prepare_sklearn) -> None:
    steps = 5
    cfg = make_config(
        {
            **TRAIN_FN,
            "seed": 0,
            "data.name": "iris",
            "model.train_fn": f"{__name__}:curve",
            "model.fixed": {"steps": steps},
            "search_space": {"speed": {"type": "float", "low": 0.01, "high": 2.0}},
            "tune.sampler": {"name": "random"},
            "tune.fidelity": {"kind": "epochs"},
            "tune.pruner": {"name": "median", "n_startup_trials": 2},
        }
    )
    study, stops, outcomes = run_study(cfg, prepare_sklearn("iris", seed=0), n_trials=12)
    assert stops and outcomes
    for number, stop in stops.items():  # stopped at the first step below the median of the complete trials
        assert len(study.trials[number].intermediate_values) == stop.step
        assert stop.curves["val_score"] == list(study.trials[number].intermediate_values.values())
    slowest_complete = min(study.trials[n].params["speed"] for n in outcomes)
    assert all(study.trials[n].params["speed"] < slowest_complete for n in stops if n > 2)  # the slow learners were cut
