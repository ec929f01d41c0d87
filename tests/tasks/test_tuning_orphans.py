"""tasks.tuning.recover_orphan_trials (the trial loop's waits, a joining worker): an orphan gets its MLflow run closed or created."""

from __future__ import annotations

import socket

import optuna
from optuna.trial import TrialState

from tasks.tracking import TAG_STUDY, TAG_TRIAL, find_runs, open_tracker
from tasks.tuning import TrialContext, recover_orphan_trials
from tunedag.config import load_config
from tunedag.space import suggest
from tunedag.study import WORKER_ATTR, build_storage


def test_an_orphan_found_while_waiting_is_failed_requeued_and_gets_a_killed_run(tmp_path):
    cfg = load_config("params.yaml", {"tune.storage": str(tmp_path / "s.journal"),
                                      "tracking.uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                                      "tracking.artifact_root": str(tmp_path / "artifacts")})
    tracker = open_tracker(cfg.tracking)
    study = optuna.create_study(study_name="s", storage=build_storage(cfg.tune.storage, False), direction="maximize")
    trial = study.ask()
    params = suggest(trial, cfg.families)
    trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:999999999:0")  # killed after its claim, before any run
    ctx = TrialContext(cfg, cfg.paths.prepared, "v", tracker.experiment_id, "", "s", {TAG_STUDY: "s"}, "thread")

    recover_orphan_trials(study, ctx)

    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == {} and study._storage.get_trial_system_attrs(trials[1]._trial_id)["fixed_params"] == params
    runs = find_runs(tracker, f"tags.`{TAG_TRIAL}` = '0'")
    assert [r.info.status for r in runs] == ["KILLED"]
