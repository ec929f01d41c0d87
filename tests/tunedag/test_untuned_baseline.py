"""Never worse than untuned: a tuned configuration that only ties a family's own defaults loses to them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution

from tasks.reports import choose_final, chosen_as
from tunedag.config import Config, load_config
from tunedag.presets import default_configurations, preset_families, untuned_family
from tunedag.selection import best_or_untuned


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> Config:
    """The preset from `data:` alone (three families, classification)."""
    path = tmp_path_factory.mktemp("preset") / "params.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "sklearn", "name": "breast_cancer"}}), encoding="utf-8")
    return load_config(path)


def _trial(number: int, value: float, params: dict) -> optuna.trial.FrozenTrial:
    made = optuna.trial.create_trial(
        value=value, params=params, distributions={k: CategoricalDistribution([v]) for k, v in params.items()}
    )
    made.number = number
    return made


def _defaults(cfg: Config, family: str) -> dict:
    return next(c for c in default_configurations(preset_families("classification")) if c["family"] == family)


def test_each_familys_defaults_are_recognised_and_a_changed_value_is_tuned(cfg):
    for config in default_configurations(preset_families("classification")):
        assert untuned_family(config, cfg.families) == config["family"]
    tuned = {**_defaults(cfg, "hgb"), "hgb.learning_rate": 0.2}
    assert untuned_family(tuned, cfg.families) is None
    assert untuned_family({**_defaults(cfg, "hgb"), "hgb.learning_rate": 0.1 + 1e-15}, cfg.families) == "hgb"


def test_a_tie_goes_to_the_untuned_baseline_a_win_to_the_tuned_trial(cfg):
    baseline = _defaults(cfg, "linear")
    tuned = {**baseline, "linear.C": 3.0}
    untuned = lambda t: untuned_family(t.params, cfg.families) is not None  # noqa: E731
    tie = [_trial(0, 0.97, tuned), _trial(1, 0.97, baseline), _trial(2, 0.95, tuned)]
    assert best_or_untuned(tie, "maximize", untuned, None).number == 1
    win = [_trial(0, 0.97, baseline), _trial(1, 0.98, tuned)]
    assert best_or_untuned(win, "maximize", untuned, None).number == 1
    assert best_or_untuned(win, "minimize", untuned, None).number == 0


def _study(cfg: Config, trials: list) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    return study


def test_the_final_choice_says_whether_tuning_beat_the_baselines(cfg, tmp_path: Path):
    hgb, linear = _defaults(cfg, "hgb"), _defaults(cfg, "linear")
    tuned = {**hgb, "hgb.max_iter": 300}
    study = _study(cfg, [_trial(0, 0.95, linear), _trial(1, 0.96, tuned), _trial(2, 0.96, hgb)])
    assert study.best_trial.number == 1  # Optuna's own choice: the first of the tied trials
    chosen = choose_final(cfg, study)
    assert chosen.params == hgb
    assert chosen_as(cfg, study, chosen) == "trial 2, hgb's untuned defaults: no tuned trial beat them on validation roc_auc"

    study = _study(cfg, [_trial(0, 0.95, linear), _trial(1, 0.96, hgb), _trial(2, 0.97, tuned)])
    chosen = choose_final(cfg, study)
    assert chosen.params == tuned
    assert chosen_as(cfg, study, chosen) == (
        "trial 2, tuned: validation roc_auc 0.97 against 0.96 for the best untuned baseline (hgb's defaults, trial 1)"
    )


@pytest.mark.parametrize(("cv_folds", "logged"), [(5, "cv_log_loss"), (0, "val_log_loss")])
def test_other_ties_go_to_the_lower_validation_log_loss_read_from_the_trial_runs(cfg, tmp_path: Path, cv_folds, logged):
    """The tie-break reads the score under the name the trial run carries: cv_ (k folds) or val_ (one split)."""
    from mlflow.tracking import MlflowClient

    from tracking.store import Tracker

    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"cv_folds": cv_folds})})

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    tracker = Tracker(client, client.create_experiment("t", artifact_location=(tmp_path / "a").as_uri()))
    trials = []
    for number, log_loss in enumerate([0.32, 0.10, 0.05]):
        run_id = client.create_run(tracker.experiment_id).info.run_id
        client.log_metric(run_id, logged, log_loss)
        client.log_metric(run_id, "cv_log_loss" if logged.startswith("val") else "val_log_loss", 1.0 - log_loss)  # a decoy
        made = _trial(number, 1.0 if number < 2 else 0.99, {**_defaults(cfg, "rf"), "rf.n_estimators": 200 + number})
        made.set_user_attr("mlflow_run_id", run_id)
        trials.append(made)
    study = _study(cfg, trials)
    assert choose_final(cfg, study, tracker).number == 1
    assert choose_final(cfg, study).number == 0  # no store to read: the lowest number
    assert "metrics" not in study.trials[1].user_attrs, "the study's trials are left as they were"
