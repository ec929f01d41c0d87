"""The ledger check: Optuna and MLflow agree, trial for trial, and nothing is left RUNNING."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from studies.storage import build_storage
from tracking.store import client_for
from tracking.tags import TAG_ROLE, TAG_STUDY, TAG_TRIAL
from tunedag.config import Config


def load_study(cfg: Config) -> optuna.Study:
    summary = json.loads(Path(cfg.paths.tune_summary).read_text())
    return optuna.load_study(study_name=summary["study_name"], storage=build_storage(cfg.tune.storage))


def study_runs(cfg: Config, study_name: str, role: str) -> list:
    client = client_for(cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    return client.search_runs(
        [exp.experiment_id], f"tags.`{TAG_STUDY}` = '{study_name}' and tags.`{TAG_ROLE}` = '{role}'", max_results=5000
    )


def check_ledger(cfg: Config, n_complete: int) -> optuna.Study:
    """Assert exactly `n_complete` complete trials, no configuration evaluated twice, one child run per trial number, none RUNNING."""
    study = load_study(cfg)
    trials = study.get_trials(deepcopy=False)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == n_complete
    evaluated = Counter(tuple(sorted(t.params.items())) for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
    twice = [c for c, n in evaluated.items() if n > 1]
    assert not twice, "a configuration the study had was evaluated again: " + "; ".join(
        f"trial {t.number} {t.state.name} from {t.datetime_start:%H:%M:%S.%f} {t.user_attrs}"
        for t in trials
        if tuple(sorted(t.params.items())) in twice
    )
    left = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not left, (
        "left RUNNING or WAITING: "
        + "; ".join(
            f"trial {t.number} {t.state.name} params {t.params} system {t.system_attrs} user {t.user_attrs}" for t in left
        )
        + " | all: "
        + "; ".join(f"{t.number} {t.state.name} {t.user_attrs.get('error', '')}" for t in trials)
    )
    children = study_runs(cfg, study.study_name, "trial")
    numbers = [int(r.data.tags[TAG_TRIAL]) for r in children]
    assert sorted(numbers) == sorted(t.number for t in trials), (
        f"one MLflow child run per Optuna trial: runs {sorted(numbers)}, trials {sorted((t.number, t.state.name) for t in trials)}"
    )
    by_number = {int(r.data.tags[TAG_TRIAL]): r for r in children}
    for t in trials:
        run = by_number[t.number]
        if t.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED"
            named, other = ("cv", "val") if cfg.data.cv_folds >= 2 else ("val", "cv")  # cross-validated or one split
            assert (
                run.data.metrics[f"{named}_{cfg.tune.metric}"] == t.values[0]
                and f"{other}_{cfg.tune.metric}" not in run.data.metrics
            )
            assert {k: str(v) for k, v in t.params.items()} == run.data.params
        elif t.state == TrialState.PRUNED:
            assert run.info.status == "FINISHED" and run.data.tags["tunedag.state"] == "PRUNED"
        else:
            assert run.info.status in ("FAILED", "KILLED")
    parents = study_runs(cfg, study.study_name, "pipeline")
    assert parents and all(r.info.status != "RUNNING" for r in parents)
    return study
