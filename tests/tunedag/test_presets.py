"""The default from `data:` alone: task, metric, validation and a space over families that holds each family's defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from optuna.trial import FixedTrial

from tunedag.config import Config, load_config
from tunedag.errors import ConfigError
from tunedag.estimators import resolve_estimator
from tunedag.presets import CV_FOLDS, default_configurations, preset_families
from tunedag.space import is_complete, suggest


def _table(path: Path, n: int, regression: bool) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=n), "colour": rng.choice(["red", "blue"], n)})
    frame["y"] = frame["x"] * 2.5 + rng.normal(size=n) if regression else np.where(frame["x"] > 1, "yes", "no")
    frame.to_csv(path, index=False)
    return path


def _load(tmp_path: Path, data: dict, **sections) -> Config:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data, **sections}), encoding="utf-8")
    return load_config(path)


def test_regression_from_path_and_target_alone(tmp_path):
    cfg = _load(tmp_path, {"source": "file", "path": str(_table(tmp_path / "t.csv", 300, True)), "target": "y"})
    assert cfg.tune.metric == "r2"
    assert {n: f.estimator.rpartition(".")[2] for n, f in cfg.families.items()} == {
        "linear": "Ridge",
        "hgb": "HistGradientBoostingRegressor",
        "rf": "RandomForestRegressor",
    }
    assert cfg.data.cv_folds == CV_FOLDS  # 240 rows for selection: k-fold


def test_classification_preset_offers_class_weights_and_roc_auc(tmp_path):
    cfg = _load(tmp_path, {"source": "file", "path": str(_table(tmp_path / "t.csv", 300, False)), "target": "y"})
    assert cfg.tune.metric == "roc_auc"
    assert [f.estimator.rpartition(".")[2] for f in cfg.families.values()] == [
        "LogisticRegression",
        "HistGradientBoostingClassifier",
        "RandomForestClassifier",
    ]
    assert all("balanced" in f.space["class_weight"].choices for f in cfg.families.values())


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_first_trials_are_each_family_s_own_defaults(tmp_path, task):
    data = {"source": "synthetic", "task": task, "synthetic": {"n_samples": 200}}
    cfg = _load(tmp_path, data, tune={"enqueue": [{"family": "rf", "rf.n_estimators": 60}]})
    families = cfg.families
    defaults = cfg.tune.enqueue[:3]
    assert [c["family"] for c in defaults] == ["linear", "hgb", "rf"]
    for config in defaults:
        family = families[config["family"]]
        own = resolve_estimator(family.estimator)(**family.fixed).get_params()
        assert {k.partition(".")[2]: v for k, v in config.items() if k != "family"} == {p: own[p] for p in family.space}
        assert is_complete(config, families)  # every default lies inside the space
    assert cfg.tune.enqueue[3] == {"family": "rf", "rf.n_estimators": 60}  # the user's own come after


def test_the_space_reaches_beyond_the_defaults():
    rf = preset_families("regression")["rf"]["search_space"]
    assert None in rf["max_depth"]["choices"] and max(c for c in rf["max_depth"]["choices"] if c) >= 32
    assert {1.0, "sqrt"} <= set(rf["max_features"]["choices"])
    hgb = preset_families("classification")["hgb"]["search_space"]
    assert hgb["learning_rate"]["low"] < 0.1 < hgb["learning_rate"]["high"]
    assert hgb["max_leaf_nodes"]["low"] < 31 < hgb["max_leaf_nodes"]["high"]
    assert hgb["l2_regularization"]["low"] == 0.0 < hgb["l2_regularization"]["high"]


def test_default_configurations_are_sampled_back_unchanged():
    families = preset_families("classification")
    cfg_families = Config.model_validate({"data": {"source": "sklearn", "name": "iris"}}).families
    for config in default_configurations(families):
        assert suggest(FixedTrial(config), cfg_families) == config


def test_explicit_model_and_space_win(make_config):
    cfg = make_config()  # the repository's params.yaml names its estimator and space
    assert list(cfg.families) == [""]
    assert cfg.model.estimator == "sklearn.ensemble.RandomForestClassifier"
    assert cfg.tune.enqueue == []


def test_preset_auto_written_out_is_the_same_as_leaving_model_out(tmp_path):
    data = {"source": "sklearn", "name": "diabetes"}
    written = _load(tmp_path, data, model={"preset": "auto", "preprocess": {"scale": False}})
    assert written.tune.metric == "r2" and list(written.families) == ["linear", "hgb", "rf"]
    assert written.model.preprocess.scale is False
    assert written.model.families == _load(tmp_path, data).model.families


def test_cv_folds_auto_splits_once_for_a_large_table_and_an_explicit_value_stays(tmp_path):
    large = {"source": "synthetic", "task": "classification", "synthetic": {"n_samples": 5000}}
    assert _load(tmp_path, large).data.cv_folds == 0
    assert _load(tmp_path, {**large, "cv_folds": 3}).data.cv_folds == 3
    assert _load(tmp_path, {**large, "synthetic": {"n_samples": 1000}}).data.cv_folds == CV_FOLDS


def test_the_expanded_config_validates_again_unchanged(tmp_path):
    cfg = _load(tmp_path, {"source": "sklearn", "name": "wine"})
    assert Config.model_validate_json(cfg.model_dump_json()) == cfg


def test_a_missing_data_file_is_named_when_the_task_must_be_read_from_it(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.path .*nope\.csv does not exist; tunedag reads its target column"):
        _load(tmp_path, {"source": "file", "path": str(tmp_path / "nope.csv"), "target": "y"})


def test_a_regressor_for_a_classification_dataset_is_refused_as_such_before_its_arguments(params_with, write_params):
    raw = params_with({"model.estimator": "sklearn.ensemble.RandomForestRegressor"})  # criterion gini stays in the space
    with pytest.raises(ConfigError, match=r"model\.estimator sklearn\.ensemble\.RandomForestRegressor is a regression estimator"):
        load_config(write_params(raw))
