"""A family's fixed arguments and its space's bounds and choices are checked against the estimator at load time."""

from __future__ import annotations

import pytest

from tunedag.checks import check_family
from tunedag.config import CategoricalParam, FloatParam, load_config
from tunedag.errors import ConfigError


def test_a_classifier_criterion_on_a_regressor_is_refused_naming_the_key(params_with, write_params):
    raw = params_with({"data.name": "diabetes", "tune.metric": "r2", "model.estimator": "sklearn.ensemble.RandomForestRegressor"})
    with pytest.raises(ConfigError) as err:
        load_config(write_params(raw))
    message = str(err.value)
    assert "search_space.criterion: 'gini' is refused by RandomForestRegressor" in message
    assert "squared_error" in message and message.endswith(".")  # the whole of scikit-learn's reason, not cut
    assert "\n" not in message


def test_a_family_fixed_argument_the_estimator_lacks_is_refused_naming_the_family(params_with, write_params):
    families = {
        "hgb": {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "fixed": {"n_jobs": 1},
            "search_space": {"max_leaf_nodes": {"type": "int", "low": 8, "high": 64}},
        }
    }
    raw = params_with({"model": {"families": families}})
    raw.pop("search_space")
    with pytest.raises(
        ConfigError, match=r"model\.families\.hgb: fixed\.n_jobs is not an argument of HistGradientBoostingClassifier"
    ):
        load_config(write_params(raw))


def test_a_bound_outside_the_estimator_range_is_refused():
    space = {"max_features": FloatParam(type="float", low=0.2, high=1.5)}
    with pytest.raises(ValueError, match=r"search_space\.max_features: 1\.5 is refused by RandomForestClassifier"):
        check_family("sklearn.ensemble.RandomForestClassifier", {}, space)


def test_a_fixed_value_outside_the_constraints_is_refused():
    with pytest.raises(ValueError, match=r"model\.fixed\.n_estimators: -3 is refused"):
        check_family("sklearn.ensemble.RandomForestClassifier", {"n_estimators": -3}, {}, fixed_key="model.fixed")


def test_valid_choices_pass_and_an_estimator_without_constraints_is_not_checked():
    space = {
        "criterion": CategoricalParam(type="categorical", choices=["gini", "entropy", "log_loss"]),
        "max_features": CategoricalParam(type="categorical", choices=["sqrt", 1.0, None]),
    }
    check_family("sklearn.ensemble.RandomForestClassifier", {"n_jobs": 1}, space)
    check_family(
        "tests.support.misbehaving.MisbehavingClassifier", {}, {"mode": CategoricalParam(type="categorical", choices=["x"])}
    )
