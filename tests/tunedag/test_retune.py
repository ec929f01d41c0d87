"""What a scheduled run decides from the studies in the storage (studies.retune.plan_run)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from studies.retune import plan_run
from studies.seeding import check_warm_start_source, warm_start
from studies.storage import open_study, study_name
from tests.tunedag.conftest import PARAMS
from tunedag.config import DataConfig, load_config
from tunedag.data import prepare, save_prepared
from tunedag.errors import ConfigError
from tunedag.problem import STUDY_ATTR, read_problem

OLD, NEW = "a" * 32, "b" * 32


@pytest.fixture
def make_cfg(tmp_path: Path, mixed_frame: pd.DataFrame):
    """A config on a tmp study storage and a prepared file of `mixed_frame` (predicting `label`)."""

    def make(**overrides):
        base = {
            "tune.storage": str(tmp_path / "study.journal"),
            "tune.n_trials": 3,
            "paths.prepared": str(tmp_path / "prepared.parquet"),
        }
        return load_config(PARAMS, base | {k.replace("__", "."): v for k, v in overrides.items()})

    write_prepared(make(), mixed_frame)
    return make


def write_prepared(cfg, frame: pd.DataFrame, target: str = "label") -> None:
    """Write `paths.prepared` for `frame`: its problem is what a study opened next records."""
    data = DataConfig(source="file", path="x.csv", target=target)
    save_prepared(prepare(frame, target, data, 0, "x.csv"), cfg.paths.prepared)


def _finish(study: optuna.Study, values: list[float], state: TrialState = TrialState.COMPLETE) -> None:
    for i, value in enumerate(values):
        params = {"n_estimators": 20 + i, "max_depth": 2 + i, "min_samples_leaf": 1, "max_features": "sqrt", "criterion": "gini"}
        dists = {k: IntDistribution(1, 300) for k in ("n_estimators", "max_depth", "min_samples_leaf")}
        dists |= {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items() if k not in dists}
        study.add_trial(
            create_trial(params=params, distributions=dists, value=value if state == TrialState.COMPLETE else None, state=state)
        )


def test_first_run_starts_a_cold_study_and_creates_no_storage(make_cfg, tmp_path):
    plan = plan_run(make_cfg(), OLD)

    assert not plan.skip and plan.warm_from is None and plan.cfg.tune.warm_start is None
    assert "started cold" in plan.reason and study_name(make_cfg(), OLD) in plan.reason
    assert not (tmp_path / "study.journal").exists()


def test_an_unfinished_study_is_resumed_whatever_on_same_data_says(make_cfg):
    cfg = make_cfg()
    _finish(open_study(cfg, OLD), [0.9, 0.8])

    plan = plan_run(cfg, OLD)

    assert not plan.skip and plan.cfg == cfg and "2 of 3 trials finished: resuming" in plan.reason


def test_same_data_and_a_finished_study_skips_by_default(make_cfg):
    cfg = make_cfg()
    _finish(open_study(cfg, OLD), [0.9, 0.8, 0.7])

    plan = plan_run(cfg, OLD)

    assert plan.skip and "unchanged" in plan.reason and "schedule.on_same_data: skip" in plan.reason


def test_same_data_with_add_trials_raises_the_budget_past_what_is_finished(make_cfg):
    cfg = make_cfg(schedule__on_same_data="add_trials", schedule__add_trials=4)
    _finish(open_study(cfg, OLD), [0.9, 0.8, 0.7, 0.6, 0.5])  # more than n_trials: an earlier add_trials run

    plan = plan_run(cfg, OLD)

    assert not plan.skip and plan.cfg.tune.n_trials == 9 and "4 more trials" in plan.reason


def test_a_dvc_repro_never_skips_nor_adds(make_cfg):
    cfg = make_cfg(schedule__on_same_data="add_trials")
    _finish(open_study(cfg, OLD), [0.9, 0.8, 0.7])

    plan = plan_run(cfg, OLD, same_data_rule=False)

    assert not plan.skip and plan.cfg.tune.n_trials == 3


def test_new_data_warm_starts_from_the_latest_earlier_study_and_queues_its_best(make_cfg):
    cfg = make_cfg(schedule__warm_start_top_k=2)
    _finish(open_study(cfg, "c" * 32), [0.1])  # an older study
    old = open_study(cfg, OLD)
    _finish(old, [0.7, 0.95, 0.9])
    _finish(old, [0.0], TrialState.FAIL)

    plan = plan_run(cfg, NEW)

    assert not plan.skip and plan.warm_from == old.study_name
    assert plan.cfg.tune.warm_start.study == old.study_name and plan.cfg.tune.warm_start.top_k == 2
    assert "data version changed (aaaaaaaa -> bbbbbbbb)" in plan.reason
    new = open_study(plan.cfg, NEW)
    warm_start(new, plan.cfg)
    queued = new.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"]["max_depth"] for t in queued] == [3, 4]  # the two best: values 0.95 and 0.9
    assert all(t.user_attrs["warm_start_from"].startswith(old.study_name) for t in queued)


def test_a_study_of_another_metric_is_not_a_warm_start_source(make_cfg):
    _finish(open_study(make_cfg(tune__metric="accuracy"), OLD), [0.9])

    plan = plan_run(make_cfg(), NEW)

    assert plan.warm_from is None and "with the same metric" in plan.reason


def test_warm_start_top_k_zero_starts_cold_and_an_explicit_warm_start_wins(make_cfg):
    old = open_study(make_cfg(), OLD)
    _finish(old, [0.9])

    assert plan_run(make_cfg(schedule__warm_start_top_k=0), NEW).warm_from is None
    explicit = plan_run(make_cfg(tune__warm_start={"study": old.study_name, "top_k": 1}), NEW)
    assert explicit.warm_from == old.study_name and explicit.cfg.tune.warm_start.top_k == 1


def test_a_study_records_its_problem_and_names_its_metric(make_cfg):
    cfg = make_cfg()

    study = open_study(cfg, OLD)

    assert study.user_attrs[STUDY_ATTR] == read_problem(cfg.paths.prepared).id
    assert study.metric_names == ["roc_auc"]


def test_a_study_of_another_problem_is_never_a_warm_start_source(make_cfg, mixed_frame):
    cfg = make_cfg()
    _finish(open_study(cfg, OLD), [0.9, 0.8])
    write_prepared(cfg, mixed_frame.rename(columns={"label": "churn"}), target="churn")  # another target, same metric

    plan = plan_run(cfg, NEW)

    assert plan.warm_from is None and plan.cfg.tune.warm_start is None
    assert (
        "started cold (no earlier study of problem" in plan.reason
        and "1 study of another or an unrecorded problem" in plan.reason
    )


def test_a_new_data_version_of_the_same_problem_is_warm_started_and_says_so(make_cfg, mixed_frame):
    cfg = make_cfg()
    old = open_study(cfg, OLD)
    _finish(old, [0.9, 0.8])
    write_prepared(cfg, pd.concat([mixed_frame, mixed_frame.iloc[:40]], ignore_index=True))  # rows added: same problem
    problem = read_problem(cfg.paths.prepared)

    plan = plan_run(cfg, NEW)

    assert plan.warm_from == old.study_name and old.user_attrs[STUDY_ATTR] == problem.id
    assert f"warm-started from the best 5 trials of {old.study_name} (the same problem, {problem.id})" in plan.reason


def test_a_stage_command_warm_starts_only_from_the_study_params_yaml_names(make_cfg):
    old = open_study(make_cfg(), OLD)
    _finish(old, [0.9])

    stage = plan_run(make_cfg(), NEW, same_data_rule=False)  # what `dvc repro` (flows.tune run) asks
    named = plan_run(make_cfg(tune__warm_start={"study": old.study_name, "top_k": 1}), NEW, same_data_rule=False)

    assert stage.warm_from is None and stage.cfg.tune.warm_start is None and "started cold (a stage command" in stage.reason
    assert named.warm_from == old.study_name and "as tune.warm_start says" in named.reason


def test_a_study_whose_configurations_no_longer_fit_the_space_is_passed_over(make_cfg):
    old = open_study(make_cfg(), OLD)
    _finish(old, [0.9, 0.8])  # max_depth 2 and 3

    plan = plan_run(make_cfg(**{"search_space.max_depth": {"type": "int", "low": 8, "high": 16}}), NEW)

    assert plan.warm_from is None and "whose configurations fit the space" in plan.reason


def test_an_explicit_warm_start_from_another_problem_is_refused_naming_both(make_cfg, mixed_frame):
    old = open_study(make_cfg(), OLD)
    _finish(old, [0.9])
    cfg = make_cfg(tune__warm_start={"study": old.study_name, "top_k": 1})
    check_warm_start_source(cfg)  # the same problem: accepted
    write_prepared(cfg, mixed_frame.drop(columns="count"))

    with pytest.raises(ConfigError) as refused:
        check_warm_start_source(cfg)

    text = str(refused.value)
    assert "tune.warm_start.study" in text and old.user_attrs[STUDY_ATTR] in text and read_problem(cfg.paths.prepared).id in text
