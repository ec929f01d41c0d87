"""Search strategies end to end: pruning, several objectives, conditional spaces, stopping, warm starts (ensembles: test_trust)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from flows.pipeline import pipeline_flow
from flows.prepare import prepare_flow
from flows.tune import run as run_tune
from reporting.status import status_lines
from tests.flows.ledger import check_ledger, load_study, study_runs
from tracking.store import client_for
from tunedag.data import file_md5, load_prepared
from tunedag.objective import evaluate
from tunedag.samplers import build_sampler
from tunedag.space import suggest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

RF_DEPTH = {"type": "int", "low": 1, "high": 12}


def _summary(cfg) -> dict:
    return json.loads(Path(cfg.paths.tune_summary).read_text())


def test_pruned_trials_stop_early_and_are_recorded_as_pruned(make_config):
    cfg = make_config(
        tune__n_trials=14,
        tune__parallelism=1,
        tune__pruner={"name": "median", "n_startup_trials": 3},
        tune__fidelity={"kind": "ensemble_size", "steps": 4},
        tune__sampler="random",
        search_space__max_depth=RF_DEPTH,
    )
    prepare_flow(cfg)
    run_tune(cfg)

    pruned_runs = [
        r for r in study_runs(cfg, _summary(cfg)["study_name"], "trial") if r.data.tags.get("tunedag.state") == "PRUNED"
    ]
    study = check_ledger(cfg, n_complete=14 - len(pruned_runs))  # MLflow's count of pruned runs, checked against Optuna's
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "a median pruner on 14 random trials prunes some"
    assert len([t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 14
    client = client_for(cfg.tracking.uri)
    runs = {int(r.data.tags["tunedag.trial"]): r for r in study_runs(cfg, study.study_name, "trial")}
    for t in pruned:
        run = runs[t.number]
        assert run.data.metrics["pruned_at_step"] < 4
        history = client.get_metric_history(run.info.run_id, "val_roc_auc_by_step")
        assert [m.step for m in history] == list(range(1, int(run.data.metrics["pruned_at_step"]) + 1))
        assert [m.value for m in history] == [t.intermediate_values[s] for s in sorted(t.intermediate_values)]


def test_two_objectives_record_the_pareto_front_and_pick_by_the_rule(make_config):
    cfg = make_config(
        tune__objectives=["model_size_kb"],
        tune__sampler={"name": "nsga2", "population_size": 4},
        tune__select={"rule": "within_tolerance", "tolerance": 0.02},
        tune__n_trials=8,
    )
    pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=8)
    summary = _summary(cfg)
    front = {p["number"] for p in summary["pareto_front"]}
    assert front == {t.number for t in study.best_trials} and summary["best_trial"] in front
    best_primary = max(t.values[0] for t in study.best_trials)
    eligible = [t for t in study.best_trials if t.values[0] >= best_primary - 0.02]
    assert summary["best_trial"] == min(eligible, key=lambda t: (t.values[1], t.number)).number
    tagged = {
        int(r.data.tags["tunedag.trial"]) for r in study_runs(cfg, study.study_name, "trial") if r.data.tags.get("tunedag.pareto")
    }
    assert tagged == front
    # One validation split (data.cv_folds 0): the study's best scores are named val_, for each objective.
    tune_metrics, test_metrics = (json.loads(Path(p).read_text()) for p in (cfg.paths.tune_metrics, cfg.paths.test_metrics))
    assert summary["score_prefix"] == "val" and test_metrics["best_val_roc_auc"] == summary["best_value"]
    assert {"best_val_roc_auc", "best_val_model_size_kb"} <= set(tune_metrics) and not [k for k in tune_metrics if "cv_" in k]


def test_model_families_with_conditional_parameters(make_config):
    families = {
        "svc": {
            "estimator": "sklearn.svm.SVC",
            "fixed": {},
            "search_space": {
                "kernel": {"type": "categorical", "choices": ["rbf", "linear"]},
                "C": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
                "gamma": {"type": "float", "low": 1e-4, "high": 1.0, "log": True, "when": {"kernel": ["rbf"]}},
            },
        },
        "rf": {
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "fixed": {"n_estimators": 20},
            "search_space": {"max_depth": RF_DEPTH},
        },
    }
    cfg = make_config(model__estimator=None, model__fixed={}, model__families=families, search_space={}, tune__n_trials=10)
    scores = pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=10)
    for t in study.trials:
        family = t.params["family"]
        assert all(k == "family" or k.startswith(f"{family}.") for k in t.params)
        assert ("svc.gamma" in t.params) == (t.params.get("svc.kernel") == "rbf")
    assert {t.params["family"] for t in study.trials} == {"svc", "rf"}
    assert scores["test_roc_auc"] > 0.9


@pytest.mark.parametrize(("rule", "expected"), [({"patience": 3}, "patience"), ({"target": 0.5}, "target")])
def test_patience_and_target_stop_the_study_early(make_config, rule, expected):
    cfg = make_config(tune__n_trials=40, tune__parallelism=1, **{f"tune__{k}": v for k, v in rule.items()})
    prepare_flow(cfg)
    run_tune(cfg)

    study = load_study(cfg)
    assert len(study.trials) < 40
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    assert expected in parent.data.tags["tunedag.stop_reason"]


def test_a_small_space_is_searched_once_each_configuration_and_an_extension_repeats_none(make_config):
    """Four configurations, a budget of ten: TPE's repeats are not run, the study stops when it holds all four."""
    space = {
        "max_depth": {"type": "int", "low": 1, "high": 2},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
    }
    cfg = make_config(search_space=space, tune__n_trials=10)
    prepare_flow(cfg)
    run_tune(cfg)
    run_tune(make_config(search_space=space, tune__n_trials=12))  # extended: nothing new to evaluate

    study = load_study(cfg)
    complete = [t.params for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert len(complete) == 4 and len({tuple(sorted(p.items())) for p in complete}) == 4
    for t in study.get_trials(states=(TrialState.FAIL,)):
        assert t.params == study.trials[t.user_attrs["duplicate_of"]].params, "a failed trial here is a repeat, not run"
    parents = study_runs(cfg, study.study_name, "pipeline")
    assert [p.data.tags["tunedag.stop_reason"].startswith("search space exhausted") for p in parents] == [True, True]
    runs = study_runs(cfg, study.study_name, "trial")
    repeats = len(study.trials) - 4
    assert repeats >= 1 and sorted(r.info.status for r in runs) == ["FINISHED"] * 4 + ["KILLED"] * repeats
    metrics = json.loads(Path(cfg.paths.tune_metrics).read_text())
    assert (metrics["n_trials"], metrics["n_failed"], metrics["n_repeats_not_run"]) == (4, 0, repeats)
    counted = f"{len(study.trials)} trials (4 complete, {repeats} {'repeat' if repeats == 1 else 'repeats'} not run)"
    assert any(counted in line for line in status_lines(cfg))


def test_warm_start_queues_the_best_configurations_of_an_earlier_study(make_config):
    first = make_config(tune__n_trials=6)
    prepare_flow(first)
    run_tune(first)
    earlier = load_study(first)
    top = sorted(earlier.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: (-t.value, t.number))[:3]

    second = make_config(
        tune__n_trials=5,
        search_space__max_depth={"type": "int", "low": 2, "high": 20},
        tune__warm_start={"study": earlier.study_name, "top_k": 3},
    )
    run_tune(second)

    study = load_study(second)
    assert study.study_name != earlier.study_name
    assert [t.params for t in study.trials[:3]] == [t.params for t in top]
    assert all(t.user_attrs["warm_start_from"].startswith(earlier.study_name) for t in study.trials[:3])


def test_manual_sampler_evaluates_exactly_the_listed_configurations(make_config):
    configs = [
        {"n_estimators": 10, "max_depth": 3, "min_samples_leaf": 2, "max_features": "sqrt", "criterion": "gini"},
        {"n_estimators": 25, "max_depth": 8, "min_samples_leaf": 1, "max_features": 0.5, "criterion": "entropy"},
    ]
    cfg = make_config(tune__sampler="manual", tune__enqueue=configs, tune__n_trials=10)
    prepare_flow(cfg)
    run_tune(cfg)
    run_tune(cfg)

    study = load_study(cfg)
    assert [t.params for t in study.trials] == configs


def test_seeded_sequential_study_matches_the_same_sampler_run_directly_in_optuna(make_config, tmp_path):
    cfg = make_config(tune__n_trials=8, tune__parallelism=1)
    prepare_flow(cfg)
    run_tune(cfg)
    ours = [t.params for t in load_study(cfg).trials]

    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    direct = optuna.create_study(sampler=build_sampler(cfg), direction="maximize")
    direct.optimize(lambda trial: evaluate(cfg, prep, suggest(trial, cfg.families)).value, n_trials=8)
    assert ours == [t.params for t in direct.trials]
