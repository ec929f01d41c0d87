"""Each compat module's private names, held to the library versions they were written for."""

from __future__ import annotations

import importlib

import optuna
import pytest

from compat import check_range

MODULES = ["compat.optuna", "compat.sklearn"]


@pytest.mark.parametrize("module", MODULES)
def test_installed_version_is_in_the_supported_range(module: str) -> None:
    check_range(*importlib.import_module(module).SUPPORTED)


def test_check_range_names_the_module_when_a_version_moves() -> None:
    with pytest.raises(RuntimeError, match=r"compat/optuna\.py was written for optuna >= 0\.1, < 0\.2"):
        check_range("optuna", "0.1", "0.2")


def test_optuna_private_names_resolve() -> None:
    from compat.optuna import study_id, study_storage, trial_id

    study = optuna.create_study()
    trial = study.ask()
    storage = study_storage(study)
    assert storage.get_trial_number_from_id(trial_id(trial)) == trial.number
    assert storage.get_study_name_from_id(study_id(study)) == study.study_name
    assert trial_id(study.trials[0]) == trial_id(trial)


def test_sklearn_validate_params_refuses_a_value_outside_the_constraints() -> None:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    from compat.sklearn import validate_params

    validate_params(RandomForestClassifier(criterion="gini"))
    with pytest.raises(ValueError, match="criterion"):
        validate_params(RandomForestRegressor(criterion="gini"))
