"""MLflow recording of a trial off the trial loop: fully written once drained, filled in after a crash."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from tasks.tracking import MODEL_ARTIFACT, TAG_ROLE, TAG_STATE, TAG_TRIAL, find_runs, local_artifact_dir, open_tracker
from tasks.trial_worker import TrialJob
from tasks.tuning import (Recorder, TrialContext, _start_trial_run, drain_recorder, launch_trial, reconcile_trials,
                          run_trial)
from tunedag.config import load_config
from tunedag.data import file_md5, load_source, prepare, save_prepared
from tunedag.study import build_storage

PARAMS = {"n_estimators": 8, "max_depth": 3, "min_samples_leaf": 2, "max_features": "sqrt", "criterion": "gini"}


@pytest.fixture
def cfg(tmp_path: Path):
    cfg = load_config("params.yaml", {"paths.prepared": str(tmp_path / "d.parquet"), "tune.storage": str(tmp_path / "s.journal"),
                                      "tracking.uri": f"sqlite:///{tmp_path / 'mlruns/mlflow.db'}",
                                      "tracking.artifact_root": str(tmp_path / "mlruns/artifacts"),
                                      "search_space.n_estimators": {"type": "int", "low": 5, "high": 10}})
    frame, target = load_source(cfg.data, cfg.seed)
    save_prepared(prepare(frame, target, cfg.data, cfg.seed, "test"), cfg.paths.prepared, {})
    return cfg


def _ctx(cfg, tracker, record_async: bool) -> TrialContext:
    tags = {"tunedag.study": "s"}
    return TrialContext(cfg, cfg.paths.prepared, file_md5(cfg.paths.prepared), tracker.experiment_id, "", "s", tags, "thread",
                        record_async=record_async)


def _job(cfg, number: int, params=PARAMS) -> TrialJob:
    return TrialJob(cfg, cfg.paths.prepared, file_md5(cfg.paths.prepared), "s", 0, number, params, False)


def test_the_recorder_runs_writes_in_order_and_drain_waits_for_them():
    done, rec = [], Recorder(size=2)
    for i in range(5):
        rec.put(lambda i=i: (time.sleep(0.01), done.append(i)))
    rec.put(lambda: 1 / 0)  # a failing write does not stop the ones after it
    rec.put(lambda: done.append("last"))
    rec.drain()
    assert done == [0, 1, 2, 3, 4, "last"]


@pytest.mark.parametrize("record_async", [True, False])
def test_a_trial_run_is_fully_recorded_with_its_model_written_in_place(cfg, record_async):
    tracker = open_tracker(cfg.tracking)
    result = run_trial.fn(_ctx(cfg, tracker, record_async), _job(cfg, 3))
    drain_recorder()
    run = tracker.client.get_run(result.run_id)
    assert result.state == "COMPLETE" and run.info.status == "FINISHED"
    assert run.data.params == {k: str(v) for k, v in PARAMS.items()}
    assert run.data.metrics[f"val_{cfg.tune.metric}"] == result.value and run.data.tags[TAG_TRIAL] == "3"
    assert run.data.tags[TAG_STATE] == "COMPLETE"
    folder = local_artifact_dir(run.info.artifact_uri) / MODEL_ARTIFACT
    assert (folder / "MLmodel").is_file(), "the worker wrote the model straight into the run's artifacts"
    assert mlflow.pyfunc.load_model(str(folder)) is not None


def test_a_held_trial_is_told_from_its_answer_and_recorded_by_its_task_once_released(cfg):
    tracker = open_tracker(cfg.tracking)
    ctx, job = _ctx(cfg, tracker, True), _job(cfg, 7)
    launched = launch_trial(ctx, job, held=True)
    told = launched.told()  # what the loop tells Optuna: the answer and the run's id, no task run needed
    returned: list = []
    task = threading.Thread(target=lambda: returned.append(run_trial.fn(ctx, job, launched)))
    task.start()
    task.join(0.5)
    drain_recorder()
    assert task.is_alive() and not returned, "a held trial's task waits for its release"
    assert tracker.client.get_run(told.run_id).info.status == "RUNNING", "nothing recorded before the release"
    launched.release()
    task.join(30)
    drain_recorder()
    assert returned == [told], "the task returns what the loop told, with the same trial time"
    run = tracker.client.get_run(told.run_id)
    assert told.state == "COMPLETE" and run.info.status == "FINISHED"
    assert run.data.metrics["trial_seconds"] == told.seconds and run.data.metrics[f"val_{cfg.tune.metric}"] == told.value


def test_a_failing_trial_is_recorded_as_failed_after_drain(cfg):
    tracker = open_tracker(cfg.tracking)
    result = run_trial.fn(_ctx(cfg, tracker, True), _job(cfg, 4, {**PARAMS, "max_depth": -4}))
    drain_recorder()
    run = tracker.client.get_run(result.run_id)
    assert result.state == "FAIL" and run.info.status == "FAILED" and run.data.tags["tunedag.error"]


def test_a_trial_told_before_its_run_was_written_is_filled_in_by_reconcile(cfg):
    """The process died after telling Optuna but before the recorder wrote the run: the next run fills it in."""
    tracker = open_tracker(cfg.tracking)
    study = optuna.create_study(study_name="s", storage=build_storage(cfg.tune.storage), direction="maximize")
    study.set_user_attr("metric", cfg.tune.metric)
    trial = study.ask()
    trial.suggest_int("max_depth", 2, 16)
    run_id, _ = _start_trial_run(_ctx(cfg, tracker, True), trial.number)
    study.tell(trial, 0.9)  # told; the run is still RUNNING, as if killed now
    reconcile_trials(tracker, study, [], "", {"tunedag.study": "s"})
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics[f"val_{cfg.tune.metric}"] == 0.9
    assert run.data.tags.get("tunedag.filled_in")
    assert len(find_runs(tracker, f"tags.`{TAG_ROLE}` = 'trial'")) == 1


def test_local_artifact_dir_only_for_runs_whose_artifacts_are_on_this_disk(tmp_path):
    assert local_artifact_dir(tmp_path.as_uri()) == tmp_path
    assert local_artifact_dir(str(tmp_path)) == tmp_path
    assert local_artifact_dir("mlflow-artifacts:/1/abc/artifacts") is None
    assert local_artifact_dir("s3://bucket/1/abc/artifacts") is None


def test_concurrent_first_clients_share_one(cfg):
    from tasks.tracking import client_for

    got = []
    threads = [threading.Thread(target=lambda: got.append(client_for(cfg.tracking.uri))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in got}) == 1


def test_a_trial_scored_before_its_model_failed_to_save_is_finished_with_the_reason(cfg):
    """The worker answered early with the score, then could not write the model: the run says so, the score stands."""
    from concurrent.futures import Future

    from tasks.trial_worker import JobResult
    from tasks.tuning import _create_run, _record_final

    tracker = open_tracker(cfg.tracking)
    ctx = _ctx(cfg, tracker, True)
    run, final = Future(), Future()
    run.set_result(_create_run(ctx, 5, None, None))
    final.set_result(JobResult("FAIL", error="ConfigError: the fitted model holds types that are not reviewed"))
    scored = JobResult("COMPLETE", [0.9], {cfg.tune.metric: 0.9}, model_pending=True)
    assert _record_final(ctx, run, None, _job(cfg, 5), scored, final, 0.1, None)
    got = tracker.client.get_run(run.result()[0])
    assert got.info.status == "FINISHED" and got.data.tags[TAG_STATE] == "COMPLETE"
    assert got.data.metrics[f"val_{cfg.tune.metric}"] == 0.9
    assert "not reviewed" in got.data.tags["tunedag.model_error"]
    assert not (local_artifact_dir(got.info.artifact_uri) / MODEL_ARTIFACT).exists()


def test_an_async_trial_leaves_no_staging_folder_and_a_dead_process_staging_is_cleared(cfg):
    import socket

    from tasks.tracking import absolute_uri, experiment_artifact_dir
    from tasks.tuning import STAGING, clear_staging

    tracker = open_tracker(cfg.tracking)
    result = run_trial.fn(_ctx(cfg, tracker, True), _job(cfg, 6))
    drain_recorder()
    root = experiment_artifact_dir(absolute_uri(cfg.tracking.uri), tracker.experiment_id)
    assert (local_artifact_dir(tracker.client.get_run(result.run_id).info.artifact_uri) / MODEL_ARTIFACT / "MLmodel").is_file()
    assert not any(p.is_dir() for p in (root / STAGING).glob("*/*")), "the model was moved out of staging"
    dead = root / STAGING / f"{socket.gethostname()}-999999999" / "tmpx"
    dead.mkdir(parents=True)
    clear_staging(tracker, cfg.tracking.uri)
    assert not dead.parent.exists() and any((root / STAGING).iterdir()), "only the dead process's folder goes"
