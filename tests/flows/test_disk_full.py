"""A disk that stops accepting writes under mlruns (issue 23, item 6): the trial fails with why, the stage stops, the next run finishes.

The full disk is injected where the model file is written: skops' `dump`, which MLflow calls and
whose OSError it re-raises as "skops does not support custom functions ..." (the misleading tag the
issue saw). Trials run in threads so the injection reaches them.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from flows._cli import execute
from flows.prepare import prepare_flow
from flows.tune import run as tune_command
from modelio.mlflow_models import MODEL_ARTIFACT
from modelio.skops_io import skops_io
from stageio.files import write_failure
from studies.storage import build_storage
from tests.flows.conftest import SHRINK
from tests.flows.ledger import check_ledger, study_runs
from tracking.store import client_for
from tracking.tags import TAG_TRIAL
from tunedag.config import load_config

OVERRIDES = {**SHRINK, "tune.executor": "thread", "tune.parallelism": 1, "tune.n_trials": 6}
FULL_AFTER = 3  # model files written before the disk fills


def _sets() -> list[str]:
    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}" for k, v in OVERRIDES.items()]


def _only_study(storage: str) -> optuna.Study:
    backend = build_storage(storage)
    (summary,) = backend.get_all_studies()
    return optuna.load_study(study_name=summary.study_name, storage=backend)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_full_disk_fails_the_trial_with_enospc_stops_the_stage_and_the_next_run_finishes(project: Path, monkeypatch, capsys):
    cfg = load_config(project / "params.yaml", OVERRIDES)
    prepare_flow(cfg)
    real_dump, written = skops_io.dump, []

    def dump(obj, file, *args, **kwargs):
        if len(written) >= FULL_AFTER:
            Path(file).write_bytes(b"PK\x03\x04")  # the first bytes fit; the rest does not
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))
        written.append(file)
        return real_dump(obj, file, *args, **kwargs)

    monkeypatch.setattr(skops_io, "dump", dump)
    capsys.readouterr()
    code = execute(tune_command, "params.yaml", _sets())
    out, err = capsys.readouterr()
    assert code != 0, err[-3000:]
    assert "skops does not support" not in out + err and "Traceback" not in out + err, err[-3000:]
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("tunedag: error: ") and "No space left on device (ENOSPC)" in last and len(last) < 1000, err[-3000:]

    study = _only_study(cfg.tune.storage)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == FULL_AFTER and len(failed) == 1, [(t.number, t.state.name) for t in trials]
    (full,) = failed
    assert "No space left on device (ENOSPC)" in full.user_attrs["error"], full.user_attrs
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [t.user_attrs.get("requeued_from") for t in waiting] == [full.number]  # not the configuration's fault: queued again
    client = client_for(cfg.tracking.uri)
    runs = {int(r.data.tags[TAG_TRIAL]): r for r in study_runs(cfg, study.study_name, "trial")}
    assert sorted(runs) == [t.number for t in trials if t.state != TrialState.WAITING]
    for t in complete:  # every trial told COMPLETE has its run and its model
        assert runs[t.number].info.status == "FINISHED"
        assert MODEL_ARTIFACT in {a.path for a in client.list_artifacts(runs[t.number].info.run_id)}
    run = runs[full.number]
    assert run.info.status in ("FAILED", "KILLED") and "No space left on device (ENOSPC)" in run.data.tags["tunedag.error"]
    assert "skops does not support" not in run.data.tags["tunedag.error"]
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    assert parent.info.status == "FAILED"

    monkeypatch.setattr(skops_io, "dump", real_dump)  # space freed: the same command finishes the study
    assert execute(tune_command, "params.yaml", _sets()) == 0
    study = check_ledger(cfg, n_complete=OVERRIDES["tune.n_trials"])
    params = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    assert full.params in [params[n] for n in params if n > full.number]  # the re-queued configuration ran


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server")
def test_a_full_tracking_database_fails_the_trial_closes_its_run_and_stops_the_stage(project: Path, monkeypatch, capsys):
    """SQLite's "database or disk is full" on a trial's record: the trial is re-queued, its run closed KILLED with why."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    cfg = load_config(project / "params.yaml", OVERRIDES)
    prepare_flow(cfg)
    real_log_batch, records = MlflowClient.log_batch, []

    def log_batch(self, run_id, metrics=(), params=(), tags=(), *args, **kwargs):
        if any(m.key == "trial_seconds" for m in metrics):  # a trial's record
            records.append(run_id)
            if len(records) > FULL_AFTER:
                raise MlflowException("(sqlite3.OperationalError) database or disk is full")
        return real_log_batch(self, run_id, metrics, params, tags, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", log_batch)
    capsys.readouterr()
    code = execute(tune_command, "params.yaml", _sets())
    err = capsys.readouterr().err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert code != 0 and "Traceback" not in err, err[-3000:]
    assert last.startswith("tunedag: error: ") and "database or disk is full" in last, err[-3000:]

    study = _only_study(cfg.tune.storage)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials if t.state != TrialState.WAITING] == [TrialState.COMPLETE] * FULL_AFTER + [TrialState.FAIL]
    runs = {int(r.data.tags[TAG_TRIAL]): r for r in study_runs(cfg, study.study_name, "trial")}
    unrecorded = runs[FULL_AFTER]
    assert unrecorded.info.status == "KILLED", unrecorded.info  # closed now, not left RUNNING for the next run to find
    assert "database or disk is full" in unrecorded.data.tags["tunedag.error"]
    assert [t.user_attrs.get("requeued_from") for t in trials if t.state == TrialState.WAITING] == [FULL_AFTER]

    monkeypatch.setattr(MlflowClient, "log_batch", real_log_batch)
    assert execute(tune_command, "params.yaml", _sets()) == 0
    check_ledger(cfg, n_complete=OVERRIDES["tune.n_trials"])


def test_write_failure_finds_the_cause_mlflow_wrapped_and_ignores_other_errors():
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/model.skops")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("skops does not support custom functions") from exc
    except RuntimeError as wrapped:
        assert write_failure(wrapped) == "No space left on device (ENOSPC) writing /x/model.skops"
    assert "database or disk is full" in write_failure(Exception("(sqlite3.OperationalError) database or disk is full"))
    assert write_failure(OSError(errno.EFBIG, "File too large")).startswith("File too large (EFBIG)")
    assert write_failure(OSError(errno.ENOENT, "No such file")) is None
    assert write_failure(ValueError("skops does not support custom functions")) is None
