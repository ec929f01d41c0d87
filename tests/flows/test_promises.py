"""End-to-end promises checked against an independent computation, so that a plausible fake fails.

Stopping (patience counted exactly, tune.timeout), the `weighted` rule, voting and stacking
ensembles of the top-K trials, a `train_fn` family through every stage, and lineage tags equal
to `git rev-parse HEAD` and to the Prefect flow run's id.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
from optuna.trial import TrialState

from flows.evaluate import evaluate_flow
from flows.pipeline import pipeline_flow
from flows.prepare import prepare_flow
from flows.train import train_flow
from flows.tune import run as run_tune
from flows.tune import task_runner, tune_flow
from modelio.trust import load_sklearn_model
from tasks.training import CUSTOM_RESULT, ROLE_FINAL
from tests.flows.ledger import check_ledger, load_study, study_runs
from tests.tunedag.nets.custom_fns import TRAIN_FN
from tracking.provenance import git_commit
from tracking.store import client_for
from tracking.tags import TAG_FLOW_RUN, TAG_GIT
from tunedag.data import file_md5, load_prepared
from tunedag.ensemble import build_ensemble
from tunedag.metrics import score
from tunedag.objective import make_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SLOW_TREE = {  # trials of a known length: a decision tree fitted after `delay` seconds
    "model.estimator": "tests.support.misbehaving.MisbehavingClassifier",
    "model.fixed": {"delay": 1.0},
    "model.trusted_types": ["tests.support.misbehaving.MisbehavingClassifier"],
    "search_space": {"max_depth": {"type": "int", "low": 1, "high": 8}},
    "tune.executor": "thread",
}


def _summary(cfg) -> dict:
    return json.loads(Path(cfg.paths.tune_summary).read_text())


def _stop_reason(cfg, study) -> str:
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    return parent.data.tags["tunedag.stop_reason"]


def _finished(study) -> list:
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


# --- stopping ---------------------------------------------------------------------------


def test_patience_stops_after_exactly_that_many_trials_without_improvement(make_config):
    patience = 3
    cfg = make_config(tune__n_trials=40, tune__parallelism=1, tune__patience=patience, tune__sampler="random")
    prepare_flow(cfg)
    run_tune(cfg)

    study = load_study(cfg)
    values = [t.value for t in _finished(study)]
    best, since, stop_at = -math.inf, 0, None  # replay: where must a study with patience 3 stop?
    for i, value in enumerate(values):
        best, since = (value, 0) if value > best else (best, since + 1)
        if since == patience:
            stop_at = i
            break
    assert stop_at is not None and stop_at == len(values) - 1, f"stopped after {len(values)} trials, values {values}"
    assert len(study.trials) == len(values) < 40
    assert _stop_reason(cfg, study) == f"no improvement in {patience} trials (patience {patience})"
    check_ledger(cfg, n_complete=stop_at + 1)


def test_timeout_stops_launching_trials_once_it_has_passed(make_config):
    timeout = 6
    cfg = make_config(
        tune__n_trials=40, tune__parallelism=1, tune__timeout=timeout, **{k.replace(".", "__"): v for k, v in SLOW_TREE.items()}
    )
    prepare_flow(cfg)
    run_tune(cfg)

    study = load_study(cfg)
    assert _stop_reason(cfg, study).startswith("timeout of 6")
    assert 1 <= len(_finished(study)) <= timeout  # 1 s trials, one at a time: 40 would take 40 s and more
    last_start = max(t.datetime_start for t in study.trials)
    first_start = min(t.datetime_start for t in study.trials)
    assert (last_start - first_start).total_seconds() < timeout, "no trial is launched after the deadline"


# --- multi-objective: the weighted rule -------------------------------------------------


def test_the_weighted_rule_picks_the_best_weighted_trial_of_the_front_and_trains_it(make_config):
    weights = [0.3, 0.7]
    cfg = make_config(
        tune__objectives=["model_size_kb"],
        tune__sampler={"name": "nsga2", "population_size": 4},
        tune__select={"rule": "weighted", "weights": weights},
        tune__n_trials=10,
        search_space__n_estimators={"type": "int", "low": 2, "high": 60},
    )
    pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=10)
    front = study.best_trials
    assert len(front) >= 2, "a front to choose from"
    gains = [[t.values[0] for t in front], [-t.values[1] for t in front]]  # roc_auc up, size down

    def scaled(column: list[float], value: float) -> float:
        return 1.0 if max(column) == min(column) else (value - min(column)) / (max(column) - min(column))

    totals = {t.number: sum(w * scaled(g, g[i]) for w, g in zip(weights, gains)) for i, t in enumerate(front)}
    expected = min(totals, key=lambda n: (-round(totals[n], 12), n))
    assert _summary(cfg)["best_trial"] == expected
    model = load_sklearn_model(cfg.paths.model_dir, cfg.model.trusted_types)
    chosen = study.trials[expected].params
    assert {k: model.named_steps["model"].get_params()[k] for k in chosen} == chosen
    assert all(t.values[1] > 0 and math.isfinite(t.values[1]) for t in study.trials)


# --- ensembles --------------------------------------------------------------------------


def _top(study, k: int) -> list:
    """The k best complete trials by value (ties by number), one per configuration: computed here, not by tunedag."""
    chosen: list = []
    for t in sorted(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: (-t.value, t.number)):
        if all(t.params != c.params for c in chosen):
            chosen.append(t)
    return chosen[:k]


@pytest.mark.parametrize(("kind", "cls"), [("voting", "VotingClassifier"), ("stacking", "StackingClassifier")])
def test_an_ensemble_holds_the_top_k_trials_and_the_single_best_is_scored_apart(make_config, kind, cls):
    cfg = make_config(
        final__ensemble={"kind": kind, "top_k": 3},
        tune__n_trials=6,
        search_space__max_depth={"type": "int", "low": 1, "high": 12},
    )
    scores = pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=6)
    top = _top(study, 3)
    model = load_sklearn_model(cfg.paths.model_dir, cfg.model.trusted_types)
    assert type(model).__name__ == cls
    members = dict(model.estimators)  # (name, unfitted pipeline) as given
    assert list(members) == [f"trial_{t.number}" for t in top]
    for t in top:
        assert {k: members[f"trial_{t.number}"].named_steps["model"].get_params()[k] for k in t.params} == t.params

    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    X, y = prep.xy("train", "val")
    X_test, y_test = prep.xy("test")
    best = max(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: (t.value, -t.number))  # first of the best
    single = make_model(cfg, prep, best.params).fit(X, y)
    assert scores["single_best_test_roc_auc"] == score(single, X_test, y_test, ["roc_auc"])["roc_auc"]
    again = build_ensemble(kind, [(f"trial_{t.number}", make_model(cfg, prep, t.params)) for t in top], prep.task, cfg.seed).fit(
        X, y
    )
    assert scores["test_roc_auc"] == score(again, X_test, y_test, ["roc_auc"])["roc_auc"]


# --- a train_fn family through every stage ----------------------------------------------


def test_a_train_fn_family_is_tuned_trained_on_train_and_val_scored_on_test_and_not_registered(make_config):
    cfg = make_config(**{k.replace(".", "__"): v for k, v in TRAIN_FN.items()}, tune__n_trials=4)
    scores = pipeline_flow(cfg)

    study = check_ledger(cfg, n_complete=4)
    summary = _summary(cfg)
    best = max(study.trials, key=lambda t: (t.value, -t.number))
    assert summary["best_trial"] == best.number and summary["best_params"] == best.params

    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    result = json.loads((cfg.paths.model_dir / CUSTOM_RESULT).read_text())
    assert result["params"] == best.params
    assert result["test_metrics"]["stage_final"] == 1.0
    assert result["test_metrics"]["rows"] == len(prep.xy("train", "val")[1])  # refit on train + validation
    assert scores["test_my_score"] == result["test_metrics"]["my_score"]
    assert json.loads(Path(cfg.paths.test_metrics).read_text())["test_my_score"] == scores["test_my_score"]

    client = client_for(cfg.tracking.uri)
    (final,) = study_runs(cfg, study.study_name, ROLE_FINAL)
    assert final.data.tags["tunedag.registered"].startswith("no")
    assert not client.search_model_versions(f"name = '{cfg.final.registered_model}'")
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    assert parent.data.metrics["test_my_score"] == scores["test_my_score"]


# --- lineage ----------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def git_project(project: Path):
    """The project as a committed git repository (HEAD known), with the cached commit forgotten before and after."""
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "a project")
    git_commit.cache_clear()
    yield project
    git_commit.cache_clear()


def test_every_run_carries_the_head_commit_and_the_flow_run_that_made_it(git_project, make_config):
    head = _git(git_project, "rev-parse", "HEAD")
    cfg = make_config(tune__n_trials=3)
    prepare_flow(cfg)
    state = tune_flow.with_options(task_runner=task_runner(cfg))(cfg, return_state=True)
    assert state.is_completed()
    flow_run_id = str(state.state_details.flow_run_id)
    train_flow(cfg)
    evaluate_flow(cfg)

    study = check_ledger(cfg, n_complete=3)
    runs = [*study_runs(cfg, study.study_name, "pipeline"), *study_runs(cfg, study.study_name, "trial")]
    assert len(runs) == 4
    assert {r.data.tags[TAG_GIT] for r in runs} == {head}
    assert {r.data.tags[TAG_FLOW_RUN] for r in runs} == {flow_run_id}
    (final,) = study_runs(cfg, study.study_name, ROLE_FINAL)
    assert final.data.tags[TAG_GIT] == head
    client = client_for(cfg.tracking.uri)
    (version,) = client.search_model_versions(f"name = '{cfg.final.registered_model}'")
    assert version.tags[TAG_GIT] == head
