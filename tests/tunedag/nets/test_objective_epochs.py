"""The objective with torch estimators: learning curves, fidelity `epochs`, pruning at the right epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunedag.objective import TrialPruned, TrialReporter, epoch_value, evaluate

TORCH = {
    "model.estimator": "tunedag.nets.TorchClassifier",
    "model.fixed": {"epochs": 5, "width": 16, "batch_size": 64, "early_stopping_patience": None, "device": "cpu"},
    "search_space": {"lr": {"type": "float", "low": 0.0001, "high": 0.1, "log": True}},
    "tune.metric": "accuracy",
}
EPOCHS = {**TORCH, "tune.fidelity": {"kind": "epochs"}, "tune.pruner": "median"}
PARAMS = {"lr": 0.01}


@pytest.fixture(scope="module")
def digits_prep(prepare_sklearn):
    return prepare_sklearn("digits", seed=0)


def test_curves_are_recorded_without_pruning(make_config, digits_prep) -> None:
    outcome = evaluate(make_config(TORCH), digits_prep, PARAMS)

    assert set(outcome.curves) == {"train_loss", "val_loss", "val_accuracy", "lr"}
    assert all(len(series) == 5 for series in outcome.curves.values())
    assert outcome.curves["train_loss"][-1] < outcome.curves["train_loss"][0]
    assert outcome.intermediate == []  # no fidelity: nothing reported to a pruner
    assert 0.8 < outcome.value <= 1.0


def test_fidelity_epochs_reports_each_epoch_and_completes(make_config, digits_prep) -> None:
    seen = []
    outcome = evaluate(make_config(EPOCHS), digits_prep, PARAMS, lambda step, value: seen.append((step, value)) or False)

    assert [s for s, _ in seen] == [1, 2, 3, 4, 5]
    assert outcome.intermediate == [v for _, v in seen] == outcome.curves["val_accuracy"]


def test_a_pruned_trial_stops_at_the_epoch_the_reporter_said(make_config, digits_prep) -> None:
    seen = []

    def stop_at_3(step: int, value: float) -> bool:
        seen.append(step)
        return step == 3

    with pytest.raises(TrialPruned) as info:
        evaluate(make_config(EPOCHS), digits_prep, PARAMS, stop_at_3)

    assert info.value.step == 3 and seen == [1, 2, 3]
    assert len(info.value.intermediate) == 3
    assert info.value.curves["val_accuracy"] == info.value.intermediate
    assert all(len(s) == 3 for s in info.value.curves.values())


def test_the_last_epoch_is_never_pruned(make_config, digits_prep) -> None:
    outcome = evaluate(make_config(EPOCHS), digits_prep, PARAMS, lambda step, value: step == 5)
    assert len(outcome.intermediate) == 5


def test_model_size_objective_of_a_torch_network(make_config, digits_prep) -> None:
    outcome = evaluate(make_config({**TORCH, "tune.objectives": ["model_size_kb"]}), digits_prep, PARAMS)
    # 64*16+16 + 16*16+16 + 16*10+10 float32 parameters
    assert outcome.values[1] == pytest.approx((64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10) * 4 / 1024)


def test_categorical_columns_are_refused_for_torch(make_config, mixed_frame) -> None:
    from tunedag.config import DataConfig
    from tunedag.data import prepare
    from tunedag.errors import DataError

    prep = prepare(mixed_frame, "label", DataConfig(source="file", path="mixed.csv", target="label"), 0, "mixed.csv")
    with pytest.raises(DataError, match="categorical columns"):
        evaluate(make_config(TORCH), prep, PARAMS)


@pytest.mark.parametrize(
    ("metric", "direction", "metrics", "expected"),
    [
        ("accuracy", "maximize", {"val_accuracy": 0.9, "val_loss": 0.3}, 0.9),
        ("log_loss", "minimize", {"val_accuracy": 0.9, "val_loss": 0.3}, 0.3),
        ("roc_auc", "maximize", {"val_accuracy": 0.9, "val_loss": 0.3}, -0.3),
        ("mae", "minimize", {"val_rmse": 2.0, "val_loss": 0.5}, 0.5),
        ("rmse", "minimize", {"val_rmse": 2.0, "val_loss": 0.5}, 2.0),
    ],
)
def test_epoch_value_is_the_metric_or_the_signed_loss(metric, direction, metrics, expected) -> None:
    assert epoch_value(metric, direction, metrics) == expected


def test_reporter_pads_curves_for_skipped_steps_and_rejects_nan() -> None:
    from tunedag.objective import TrialFailed

    reporter = TrialReporter()
    reporter.log(1, {"a": 1.0})
    reporter.log(3, {"a": 3.0, "b": 2.0})
    assert reporter.curves["a"][::2] == [1.0, 3.0] and math.isnan(reporter.curves["a"][1])
    assert np.isnan(reporter.curves["b"][:2]).all() and reporter.curves["b"][2] == 2.0
    with pytest.raises(TrialFailed):
        reporter.report(1, float("nan"))


def test_same_seed_same_trial_results_in_a_pruned_study(make_config, digits_prep) -> None:
    """Three TPE trials with median pruning per epoch, twice: the same values, states and pruning epochs."""
    import optuna

    from tunedag.samplers import build_pruner, build_sampler
    from tunedag.space import suggest

    cfg = make_config({**EPOCHS, "tune.pruner": {"name": "median", "n_startup_trials": 1}, "tune.sampler": "random"})

    def study_results():
        study = optuna.create_study(direction="maximize", sampler=build_sampler(cfg), pruner=build_pruner(cfg))
        results = []
        for _ in range(3):
            trial = study.ask()
            params = suggest(trial, cfg.families)
            try:
                outcome = evaluate(cfg, digits_prep, params, lambda s, v: trial.report(v, s) or trial.should_prune())
                study.tell(trial, outcome.value)
                results.append((params, outcome.value, outcome.curves))
            except TrialPruned as pruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                results.append((params, "pruned", pruned.step))
        return results

    assert study_results() == study_results()


def test_estimator_path_allow_list_takes_the_classes_not_the_helpers() -> None:
    from tunedag.errors import ConfigError
    from tunedag.estimators import check_estimator_path, estimator_param_names, fit_takes_on_epoch, resolve_estimator

    names = estimator_param_names("tunedag.nets.TorchRegressor")
    assert {"architecture", "lr", "hypergradient_beta", "module_factory", "device", "random_state"} <= names
    assert fit_takes_on_epoch(resolve_estimator("tunedag.nets.TorchClassifier"))
    assert not fit_takes_on_epoch(resolve_estimator("sklearn.ensemble.RandomForestClassifier"))
    for path in ("tunedag.nets.is_torch_model", "tunedag.nets.HypergradientOptimizer", "tunedag.nets.InferenceModule"):
        with pytest.raises(ConfigError, match="not a scikit-learn estimator class"):
            check_estimator_path(path)
