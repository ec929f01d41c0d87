"""Each compat module's private names, held to the library versions they were written for."""

from __future__ import annotations

import importlib

import optuna
import pytest

from compat import check_range

MODULES = ["compat.optuna", "compat.skops", "compat.sklearn", "compat.mlflow"]


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


def test_optuna_journal_file_path_and_lock_resolve(tmp_path):
    from optuna.storages.journal import JournalFileBackend

    from compat.optuna import journal_lock, journal_path

    backend = JournalFileBackend(str(tmp_path / "study.journal"))
    assert journal_path(backend) == tmp_path / "study.journal" and journal_path(backend).is_file()
    with journal_lock(backend):  # Optuna's symlink lock: a link beside the file while held
        assert (tmp_path / "study.journal.lock").is_symlink()
    assert not (tmp_path / "study.journal.lock").exists()


def test_optuna_rdb_storage_under_a_study_resolves(tmp_path):
    from optuna.storages import RDBStorage

    from compat.optuna import rdb_storage

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert isinstance(rdb_storage(study), RDBStorage) and rdb_storage(optuna.create_study()) is None
    rdb_storage(study).engine.dispose()


def test_optuna_search_space_transform_maps_to_the_unit_cube_and_back():
    from optuna.distributions import FloatDistribution, IntDistribution

    from compat.optuna import SearchSpaceTransform

    space = {"n": IntDistribution(10, 50, step=10), "lr": FloatDistribution(1e-3, 1.0, log=True)}
    trans = SearchSpaceTransform(space, transform_step=True, transform_0_1=True)
    x = trans.transform({"n": 30, "lr": 0.1})
    assert ((0 <= x) & (x <= 1)).all() and trans.untransform(x) == pytest.approx({"n": 30, "lr": 0.1})


def test_skops_writer_module_writes_the_schema_with_its_json_global():
    import json
    import zipfile
    from io import BytesIO

    from compat.skops import writer_module
    from modelio.skops_io import CompactJson, skops_io

    writer = writer_module()
    assert writer.json is CompactJson  # modelio.skops_io swapped it at import
    schema = zipfile.ZipFile(BytesIO(skops_io.dumps({"a": [1, 2]}))).read("schema.json").decode()
    assert "\n" not in schema and json.loads(schema)
    writer.json = json
    try:
        assert (
            "\n" in zipfile.ZipFile(BytesIO(skops_io.dumps({"a": [1, 2]}))).read("schema.json").decode()
        )  # skops' own, indented
    finally:
        writer.json = CompactJson


def test_sklearn_validate_params_refuses_a_value_outside_the_constraints() -> None:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    from compat.sklearn import validate_params

    validate_params(RandomForestClassifier(criterion="gini"))
    with pytest.raises(ValueError, match="criterion"):
        validate_params(RandomForestRegressor(criterion="gini"))


def test_optuna_distribution_contains_answers_inside_outside_and_unknown_choices():
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from compat.optuna import distribution_contains

    assert distribution_contains(IntDistribution(1, 5), 3) and not distribution_contains(IntDistribution(1, 5), 9)
    assert distribution_contains(CategoricalDistribution(["a", "b"]), "b")
    with pytest.raises(ValueError):
        distribution_contains(CategoricalDistribution(["a", "b"]), "z")


def test_mlflow_requirement_check_runs_once_per_list_through_the_module_global_a_save_calls(tmp_path, monkeypatch):
    import mlflow.sklearn
    import mlflow.utils.environment as env
    from sklearn.dummy import DummyClassifier

    from compat.mlflow import MODULE, check_requirements_once

    assert MODULE == env.__name__
    calls = []
    monkeypatch.setattr(env, "warn_dependency_requirement_mismatches", calls.append)  # restored after the test
    check_requirements_once()
    model, requirements = DummyClassifier().fit([[0], [1]], [0, 1]), ["scikit-learn", "numpy"]
    for i in range(3):
        mlflow.sklearn.save_model(model, str(tmp_path / f"m{i}"), serialization_format="skops", pip_requirements=requirements)
    env.warn_dependency_requirement_mismatches(["another==1"])
    assert len(calls) == 2 and calls[1] == ["another==1"], calls  # the save's list once, then the new list


def test_optuna_queued_params_are_what_enqueue_trial_fixed():
    from compat.optuna import queued_params

    study = optuna.create_study()
    study.enqueue_trial({"x": 3, "kind": "a"})
    assert queued_params(study.trials[0]) == {"x": 3, "kind": "a"}  # WAITING
    study.ask()
    assert queued_params(study.trials[0]) == {"x": 3, "kind": "a"}  # asked: the sampler returns these
    study.ask()
    assert queued_params(study.trials[1]) == {}  # not enqueued
