"""Trials that raise, hang, eat memory, crash their process or score NaN: recorded as failed, the study goes on."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from flows.prepare import prepare_flow
from flows.tune import tune_flow
from tests.flows.ledger import check_ledger, study_runs
from tracking.tags import TAG_TRIAL

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

MODES = ["ok", "raise", "hang", "memory", "crash", "nan", "ok"]
REASONS = {
    "raise": "broken on purpose",
    "hang": "ran past tune.trial_timeout (10 s); its worker was stopped",
    "memory": "ran out of memory (tune.trial_memory_mb 300 MB)",
    "crash": "its worker process died (exit code 3)",
    "nan": "NaN",
}


def test_bad_trials_fail_with_their_reason_and_the_study_goes_on(make_config):
    cfg = make_config(
        **{
            "model.estimator": "tests.support.misbehaving.MisbehavingClassifier",
            "model.fixed": {},
            "model.trusted_types": ["tests.support.misbehaving.MisbehavingClassifier"],
            "search_space": {
                "mode": {"type": "categorical", "choices": sorted(set(MODES))},
                "max_depth": {"type": "int", "low": 1, "high": 8},
            },
            "tune.sampler": {"name": "manual"},
            "tune.enqueue": [{"mode": m, "max_depth": 2 + i} for i, m in enumerate(MODES)],
            "tune.executor": "process",  # what enforces the timeout and memory limit, and survives a crash
            "tune.trial_timeout": 10,  # the hanging trial waits it out
            "tune.trial_memory_mb": 300,
        }
    )
    prepare_flow(cfg)
    summary = tune_flow(cfg)

    study = check_ledger(cfg, n_complete=2)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    assert [t.params["mode"] for t in trials] == MODES
    assert [t.state for t in trials] == [TrialState.COMPLETE] + [TrialState.FAIL] * 5 + [TrialState.COMPLETE]
    runs = {int(r.data.tags[TAG_TRIAL]): r for r in study_runs(cfg, study.study_name, "trial")}
    for trial in trials[1:-1]:
        assert REASONS[trial.params["mode"]] in runs[trial.number].data.tags["tunedag.error"]
    oks = [t for t in trials if t.state == TrialState.COMPLETE]
    assert summary["best_value"] == max(t.value for t in oks)
    assert summary["best_trial"] in {t.number for t in oks}
