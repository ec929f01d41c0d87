"""params.yaml keys for torch networks and user training functions: accepted, and refused with the key named."""

from __future__ import annotations

import pytest

from tests.tunedag.nets.custom_fns import TRAIN_FN
from tunedag.config import load_config
from tunedag.errors import ConfigError

TORCH = {
    "model.estimator": "tunedag.nets.TorchClassifier",
    "model.fixed": {"epochs": 5, "device": "cpu"},
    "search_space": {
        "lr": {"type": "float", "low": 0.0001, "high": 0.1, "log": True},
        "architecture": {"type": "categorical", "choices": ["mlp", "cnn"]},
    },
    "tune.metric": "accuracy",
}
EPOCHS = {**TORCH, "tune.fidelity": {"kind": "epochs"}, "tune.pruner": "median"}
FAMILIES = {
    "model.estimator": None,
    "model.fixed": {},
    "search_space": {},
    "model.families": {
        "net": {
            "estimator": "tunedag.nets.TorchClassifier",
            "fixed": {"epochs": 3},
            "search_space": {"width": {"type": "int", "low": 8, "high": 64}},
        },
        "mine": {
            "train_fn": "tests.tunedag.nets.custom_fns:logistic",
            "search_space": {"C": {"type": "float", "low": 0.01, "high": 10, "log": True}},
        },
    },
    "tune.metric": "accuracy",
}


def load(params_with, write_params, changes):
    return load_config(write_params(params_with(changes)))


@pytest.mark.parametrize(
    "changes",
    [
        TORCH,
        EPOCHS,
        TRAIN_FN,
        FAMILIES,
        {**EPOCHS, "tune.pruner": {"name": "hyperband", "max_resource": 5}},
        {**TRAIN_FN, "tune.fidelity": {"kind": "epochs"}, "tune.pruner": "median"},
        {"data.source": "npz", "data.path": "data/raw/images.npz", **TORCH},
    ],
    ids=["torch", "fidelity-epochs", "train_fn", "families-torch-and-train_fn", "hyperband-epochs", "train_fn-epochs", "npz"],
)
def test_good_configs_load(params_with, write_params, changes) -> None:
    cfg = load(params_with, write_params, changes)
    families = cfg.families
    assert all((f.estimator is None) != (f.train_fn is None) for f in families.values())


def test_a_train_fn_metric_takes_the_stated_direction(params_with, write_params) -> None:
    cfg = load(params_with, write_params, {**TRAIN_FN, "tune.direction": "minimize"})
    assert cfg.tune.resolved_direction == "minimize" and cfg.tune.directions == ["minimize"]
    assert cfg.families[""].train_fn == "tests.tunedag.nets.custom_fns:logistic"


BAD = [
    pytest.param(
        {**TRAIN_FN, "model.estimator": "sklearn.linear_model.LogisticRegression"}, "model", "either", id="estimator-and-train_fn"
    ),
    pytest.param(
        {**TRAIN_FN, "model.train_fn": "tests.tunedag.nets.nowhere:f"},
        "model.train_fn",
        "cannot be imported",
        id="train_fn-missing-module",
    ),
    pytest.param(
        {**TRAIN_FN, "model.train_fn": "tests.tunedag.nets.custom_fns:NOT_CALLABLE"},
        "model.train_fn",
        "not a function",
        id="train_fn-not-callable",
    ),
    pytest.param({**TRAIN_FN, "model.train_fn": "nocolon"}, "model.train_fn", "import path", id="train_fn-not-a-path"),
    pytest.param(
        {**TRAIN_FN, "tune.direction": None}, "tune.metric", "'my_score' is unknown", id="custom-metric-without-direction"
    ),
    pytest.param(
        {**TORCH, "tune.metric": "my_score", "tune.direction": "maximize"},
        "tune.metric",
        "only train_fn",
        id="custom-metric-with-estimator",
    ),
    pytest.param({**TRAIN_FN, "data.cv_folds": 3, "data.val_size": 0}, "train_fn", "cv_folds", id="train_fn-with-cv"),
    pytest.param(
        {**TRAIN_FN, "tune.fidelity": {"kind": "train_fraction"}, "tune.pruner": "median"},
        "train_fn",
        "fidelity",
        id="train_fn-train_fraction",
    ),
    pytest.param(
        {**TRAIN_FN, "tune.objectives": ["model_size_kb"]}, "tune.objectives", "fitted estimator", id="train_fn-size-objective"
    ),
    pytest.param({**TORCH, "final.ensemble": {"kind": "voting"}}, "final.ensemble.kind", "none", id="torch-ensemble"),
    pytest.param(
        {"tune.fidelity": {"kind": "epochs"}, "tune.pruner": "median"}, "tune.fidelity.kind", "on_epoch", id="epochs-on-a-forest"
    ),
    pytest.param({**EPOCHS, "data.cv_folds": 3, "data.val_size": 0}, "tune.fidelity.kind", "cv_folds", id="epochs-with-cv"),
    pytest.param({**EPOCHS, "tune.pruner": "hyperband"}, "tune.pruner", "max_resource", id="epochs-hyperband-without-max"),
    pytest.param(
        {**EPOCHS, "model.fixed": {"validation_fraction": 0.0, "early_stopping_patience": None}},
        "tune.fidelity.kind",
        "validation_fraction",
        id="epochs-without-validation",
    ),
    pytest.param({**TORCH, "model.fixed": {"epoch": 5}}, "model", "epoch", id="torch-fixed-typo"),
    pytest.param(
        {**TORCH, "search_space": {"lrate": {"type": "float", "low": 0.001, "high": 0.1}}},
        "search_space.lrate",
        "not a parameter",
        id="torch-space-typo",
    ),
    pytest.param({"data.source": "npz", "data.path": "images.csv"}, "data", "npz", id="npz-wrong-suffix"),
    pytest.param({"data.source": "npz"}, "data", "path", id="npz-without-path"),
]


@pytest.mark.parametrize(("changes", "key", "words"), BAD)
def test_bad_combinations_are_refused_naming_the_key(params_with, write_params, changes, key, words) -> None:
    with pytest.raises(ConfigError) as info:
        load(params_with, write_params, changes)
    message = str(info.value)
    assert key in message and words in message, message
    assert "\n" not in message.strip()
