"""Cutting an earlier configuration to the current search space (`tunedag.space.fit_to_space`), alone and in a warm start."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import create_trial

from studies.seeding import warm_start
from tests.tunedag.conftest import PARAMS
from tunedag.config import load_config
from tunedag.space import fit_to_space, suggest

SPACE = {
    "n_estimators": {"type": "int", "low": 20, "high": 100},
    "max_depth": {"type": "int", "low": 2, "high": 8, "step": 2},
    "max_features": {"type": "categorical", "choices": ["sqrt", "log2"]},
    "ccp_alpha": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
}
FAMILIES = {
    "rf": {"estimator": "sklearn.ensemble.RandomForestClassifier", "search_space": {"max_depth": SPACE["max_depth"]}},
    "lr": {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "search_space": {"C": {"type": "float", "low": 0.01, "high": 10.0, "log": True}},
    },
}


def _cfg(tmp_path: Path, **overrides):
    return load_config(PARAMS, {"search_space": SPACE, "tune.storage": str(tmp_path / "study.journal"), **overrides})


def test_keeps_every_value_inside_the_space(tmp_path):
    params = {"n_estimators": 50, "max_depth": 4, "max_features": "log2", "ccp_alpha": 0.01}
    assert fit_to_space(params, _cfg(tmp_path).families) == params


def test_drops_unknown_names_and_values_outside_the_ranges_choices_or_step(tmp_path):
    families = _cfg(tmp_path).families
    old = {
        "n_estimators": 300,  # above high
        "max_depth": 5,  # off the step of 2
        "max_features": 0.5,  # not a choice any more
        "ccp_alpha": 0.05,  # inside
        "min_samples_leaf": 3,  # no longer searched
    }
    assert fit_to_space(old, families) == {"ccp_alpha": 0.05}
    assert fit_to_space({"n_estimators": 19, "max_depth": 8, "ccp_alpha": 0.2}, families) == {"max_depth": 8}


def test_families_keep_the_family_and_its_own_prefixed_names_only(tmp_path):
    families = _cfg(
        tmp_path, search_space={}, **{"model.estimator": None, "model.fixed": {}, "model.families": FAMILIES}
    ).families
    assert fit_to_space({"family": "lr", "lr.C": 1.0, "rf.max_depth": 4}, families) == {"family": "lr", "lr.C": 1.0}
    assert fit_to_space({"family": "lr", "lr.C": 50.0}, families) == {"family": "lr"}
    assert fit_to_space({"family": "svm", "svm.C": 1.0}, families) == {}


def test_a_warm_start_queues_each_best_configuration_cut_to_the_current_space(tmp_path):
    """The earlier study searched a wider space; its best configurations are queued with only what still fits,
    and a trial drawn from the queue samples the rest inside the current space."""
    cfg = _cfg(tmp_path, **{"tune.warm_start": {"study": "earlier", "top_k": 2}})
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(cfg.tune.storage))
    earlier = optuna.create_study(study_name="earlier", storage=storage, direction="maximize")
    wide = {
        "n_estimators": IntDistribution(10, 500),
        "max_depth": IntDistribution(1, 16),
        "max_features": CategoricalDistribution(["sqrt", "log2", 0.5]),
    }
    for value, params in [
        (0.9, {"n_estimators": 400, "max_depth": 6, "max_features": "sqrt"}),
        (0.8, {"n_estimators": 50, "max_depth": 3, "max_features": 0.5}),
        (0.7, {"n_estimators": 60, "max_depth": 4, "max_features": "log2"}),
    ]:
        earlier.add_trial(create_trial(params=params, distributions=wide, value=value))

    study = optuna.create_study(study_name="now", storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    assert warm_start(study, cfg) == [0, 1]
    assert len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))) == 2
    first, second = (suggest(study.ask(), cfg.families) for _ in range(2))
    assert {k: first[k] for k in ("max_depth", "max_features")} == {"max_depth": 6, "max_features": "sqrt"}
    assert first["n_estimators"] != 400 and second["n_estimators"] == 50 and second["max_features"] != 0.5
    for drawn in (first, second):  # what was cut is drawn again, inside the current space
        assert set(drawn) == set(SPACE) and fit_to_space(drawn, cfg.families) == drawn
