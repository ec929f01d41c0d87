"""A trial's record: evaluated, model saved, run written and closed before Optuna hears of it; repairs after a crash."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from modelio.mlflow_models import MODEL_ARTIFACT
from runners import Limits, make_runner
from runners.starting import start_runner
from studies.storage import WORKER_ATTR, build_storage
from tasks.tuning import run_trial
from tracking.runs import local_artifact_dir
from tracking.store import find_runs, open_tracker
from tracking.tags import TAG_ERROR, TAG_STATE, TAG_STUDY, TAG_TRIAL
from trials.records import INTERRUPTED, TAG_VALUES, TrialContext, record, start_trial
from trials.recovery import recover_orphan_trials
from tunedag.data import file_md5
from tunedag.space import suggest

DEAD = f"{socket.gethostname()}:999999999:0"  # a claim by a process that is gone


@pytest.fixture
def setup(cfg, empty_mlflow_store):
    empty_mlflow_store(cfg.tracking.uri)
    tracker = open_tracker(cfg.tracking)
    study = optuna.create_study(study_name="s", storage=build_storage(cfg.tune.storage, False), direction="maximize")
    parent = tracker.client.create_run(tracker.experiment_id).info.run_id
    ctx = TrialContext(cfg, file_md5(cfg.paths.prepared), tracker.experiment_id, parent, "s", {TAG_STUDY: "s"})
    return tracker, study, ctx


def _trial(study, ctx, owner=None):
    trial = study.ask()
    params = suggest(trial, ctx.cfg.families)
    if owner:
        trial.set_user_attr(WORKER_ATTR, owner)
    return trial, params


def test_a_trial_is_recorded_in_full_with_its_model_in_the_runs_own_folder(setup):
    tracker, study, ctx = setup
    trial, params = _trial(study, ctx)
    run_id, job = start_trial(ctx, trial, params, False)
    with make_runner("thread", 1, Limits(threads=1)) as runner:
        from dataclasses import replace

        result = run_trial.fn(replace(ctx, runner=runner), job, run_id)
    model_dir = job.model_dir
    run = tracker.client.get_run(run_id)
    assert result.state == "COMPLETE" and run.info.status == "FINISHED"
    assert json.loads(run.data.tags[TAG_VALUES]) == result.values
    assert (
        run.data.params == {k: str(v) for k, v in params.items()}
        and run.data.metrics["val_" + ctx.cfg.tune.metric] == result.values[0]
    )
    assert ctx.cfg.data.cv_folds == 0 and not [k for k in run.data.metrics if k.startswith("cv_")], "one split: val_, not cv_"
    assert (local_artifact_dir(run.info.artifact_uri) / MODEL_ARTIFACT) == Path(model_dir)
    assert mlflow.pyfunc.load_model(model_dir) is not None


def test_a_run_that_cannot_be_written_is_unrecorded_never_complete(setup, monkeypatch):
    tracker, study, ctx = setup
    trial, params = _trial(study, ctx)
    run_id, job = start_trial(ctx, trial, params, False)
    monkeypatch.setattr("tasks.tuning.record", lambda *a: (_ for _ in ()).throw(ConnectionError("store down")))
    with make_runner("thread", 1, Limits(threads=1)) as runner:
        from dataclasses import replace

        result = run_trial.fn(replace(ctx, runner=runner), job, run_id)
    assert result.state == "UNRECORDED" and "store down" in result.error


def test_an_orphan_recorded_but_not_told_is_told_from_its_run_without_running_again(setup):
    tracker, study, ctx = setup
    trial, params = _trial(study, ctx, DEAD)
    run_id, job = start_trial(ctx, trial, params, False)
    from trials.job import JobResult

    record(tracker.client, run_id, job, JobResult("COMPLETE", [0.91], {"f1": 0.91}), 1.0)
    _assert_told_from_its_run(study, ctx, run_id, 0.91)


def test_a_trial_run_an_earlier_tunedag_wrote_is_found_by_its_tag_names(setup):
    """Stores written before hold `tunedag.study`, `tunedag.role` and `tunedag.trial`: an orphan is told from such a run."""
    tracker, study, ctx = setup
    trial, params = _trial(study, ctx, DEAD)
    earlier = {"tunedag.study": "s", "tunedag.role": "trial", "tunedag.trial": "0", "tunedag.state": "COMPLETE"}
    run_id = tracker.client.create_run(tracker.experiment_id, tags=earlier).info.run_id
    tracker.client.set_tag(run_id, TAG_VALUES, "[0.87]")
    tracker.client.set_terminated(run_id, "FINISHED")
    _assert_told_from_its_run(study, ctx, run_id, 0.87)


def _assert_told_from_its_run(study, ctx, run_id: str, value: float) -> None:
    """Recovery tells the dead process's trial 0 COMPLETE with the value its FINISHED run holds."""
    assert recover_orphan_trials(study, ctx) == [0]
    [told] = study.get_trials(deepcopy=False)
    assert told.state == TrialState.COMPLETE and told.values == [value] and told.user_attrs["mlflow_run_id"] == run_id


def test_an_orphan_not_recorded_is_failed_requeued_and_its_run_killed_with_why(setup):
    tracker, study, ctx = setup
    trial, params = _trial(study, ctx, DEAD)
    start_trial(ctx, trial, params, False)
    _trial(study, ctx, DEAD)  # killed after its claim, before its run was created

    assert recover_orphan_trials(study, ctx, whole=True) == [0, 1]
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]
    assert trials[2].user_attrs["requeued_from"] == 0
    found = find_runs(tracker, f"tags.`{TAG_STUDY}` = 's'")
    runs = {r.data.tags[TAG_TRIAL]: r for r in found}
    assert len(found) == 2, "one run per trial number"
    assert {n: r.info.status for n, r in runs.items()} == {"0": "KILLED", "1": "KILLED"}
    assert all(r.data.tags["tunedag.error"].startswith("interrupted: ") for r in runs.values())
    assert runs["0"].data.params == {k: str(v) for k, v in params.items()}


def test_a_live_trial_is_left_alone(setup):
    tracker, study, ctx = setup
    _trial(study, ctx, f"{socket.gethostname()}:{__import__('os').getpid()}:{__import__('psutil').Process().create_time():.0f}")
    assert recover_orphan_trials(study, ctx, whole=True) == []
    assert study.get_trials(deepcopy=False)[0].state == TrialState.RUNNING


def test_trials_a_journal_lost_are_told_again_in_order_from_their_runs(setup):
    tracker, study, ctx = setup
    from trials.job import JobResult

    runs = []
    for value in (0.8, 0.9):
        trial, params = _trial(study, ctx)
        run_id, job = start_trial(ctx, trial, params, False)
        record(tracker.client, run_id, job, JobResult("COMPLETE", [value]), 1.0)
        runs.append((params, value))
    study.tell(0, [0.8])
    study.tell(1, [0.9])
    fresh = optuna.create_study(study_name="s2", storage=build_storage(ctx.cfg.tune.storage, False), direction="maximize")
    fresh.enqueue_trial(runs[0][0])  # trial 0 kept, trial 1 lost with the journal's tail
    trial = fresh.ask()
    suggest(trial, ctx.cfg.families)
    fresh.tell(trial, [0.8])
    from dataclasses import replace

    recover_orphan_trials(fresh, replace(ctx, study_name="s"), whole=True)
    trials = fresh.get_trials(deepcopy=False)
    assert [(t.number, t.state, t.values) for t in trials] == [(0, TrialState.COMPLETE, [0.8]), (1, TrialState.COMPLETE, [0.9])]
    assert trials[1].params == runs[1][0] and fresh.best_value == 0.9


def test_a_failed_trial_without_a_run_gets_one_with_its_own_reason(setup):
    tracker, study, ctx = setup
    trial, _ = _trial(study, ctx)
    trial.set_user_attr("error", INTERRUPTED)
    study.tell(trial, state=TrialState.FAIL)
    recover_orphan_trials(study, ctx, whole=True)
    [run] = find_runs(tracker, f"tags.`{TAG_STUDY}` = 's'")
    assert run.info.status == "KILLED" and run.data.tags["tunedag.error"] == INTERRUPTED and run.data.tags[TAG_STATE] == "FAIL"


def test_local_artifact_dir_only_for_runs_whose_artifacts_are_on_this_disk(tmp_path):
    assert local_artifact_dir(tmp_path.as_uri()) == tmp_path
    assert local_artifact_dir(str(tmp_path)) == tmp_path
    assert local_artifact_dir("s3://bucket/x") is None
    assert local_artifact_dir("mlflow-artifacts:/1/abc/artifacts") is None


def test_the_runner_starts_beside_the_caller_and_is_closed_cancelling_on_an_error(cfg, monkeypatch):
    import time

    closed = []

    class Started:
        def close(self, cancel=False):
            closed.append(cancel)

    monkeypatch.setattr("runners.starting.runner_for", lambda cfg: (time.sleep(0.3), Started())[1])
    with start_runner(cfg) as runner:
        assert not runner.done(), "the caller goes on while the workers start"
        assert isinstance(runner.result(), Started)
    assert closed == [False]
    with pytest.raises(KeyError), start_runner(cfg):
        raise KeyError("bad input")
    assert closed == [False, True]


def test_a_trial_whose_runner_the_stop_closed_before_its_submit_comes_back_interrupted(setup):
    from dataclasses import replace

    tracker, study, ctx = setup
    trial, params = _trial(study, ctx)
    run_id, job = start_trial(ctx, trial, params, False)
    runner = make_runner("thread", 1, Limits(threads=1))
    runner.close()
    stopped = replace(ctx, runner=runner)
    stopped.stop.set()
    result = run_trial.fn(stopped, job, run_id)
    assert result.state == "INTERRUPTED" and result.error == INTERRUPTED


def test_a_pipeline_run_left_running_is_closed_with_why_only_when_its_process_is_gone(cfg):
    from studies.storage import worker_id
    from tracking.runs import start_run
    from tracking.tags import TAG_OWNER, TAG_ROLE
    from trials.recovery import DIED, close_stale_parents

    tracker = open_tracker(cfg.tracking)
    tags = {TAG_STUDY: "s", TAG_ROLE: "pipeline"}
    live = start_run(tracker, "pipeline-live", {**tags, TAG_OWNER: worker_id()}).info.run_id  # this process: still running it
    dead = start_run(tracker, "pipeline-dead", {**tags, TAG_OWNER: DEAD}).info.run_id
    unowned = start_run(tracker, "pipeline-old", tags).info.run_id  # written before owners were recorded

    close_stale_parents(tracker, "s")

    runs = {r: tracker.client.get_run(r) for r in (live, dead, unowned)}
    assert runs[live].info.status == "RUNNING" and "tunedag.stop_reason" not in runs[live].data.tags
    for run_id in (dead, unowned):
        assert runs[run_id].info.status == "KILLED" and runs[run_id].data.tags["tunedag.stop_reason"] == DIED


def test_a_trial_asked_beyond_the_budget_is_given_back_named_with_its_asker_and_its_run_closed(setup):
    """Two drivers raced for the last place: the surplus trial fails with why, its asker named, its run KILLED; none runs."""
    from dataclasses import replace

    from flows.tune import _launch
    from studies.storage import worker_id

    tracker, study, ctx = setup
    ctx = replace(ctx, cfg=ctx.cfg.model_copy(update={"tune": ctx.cfg.tune.model_copy(update={"n_trials": 1})}))
    _trial(study, ctx, owner=f"{socket.gethostname()}:1:0")  # another driver's running trial fills the budget
    running: dict = {}
    assert _launch(study, ctx, running, prune=False) == (None, None)
    surplus = study.get_trials(deepcopy=False)[1]
    assert not running and surplus.state == TrialState.FAIL and "budget was filled" in surplus.user_attrs["error"]
    assert surplus.user_attrs[WORKER_ATTR] == worker_id()
    (run,) = find_runs(tracker, f"tags.`{TAG_TRIAL}` = '1'")
    assert run.info.status == "KILLED" and "budget" in run.data.tags[TAG_ERROR]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # PartialFixedSampler
def test_a_trial_the_sampler_gives_a_configuration_the_study_holds_is_not_run(setup):
    """Its trial fails with which trial holds it, its run is KILLED with why and the parameters; no budget is spent."""
    from flows.tune import _launch
    from studies.storage import tally

    tracker, study, ctx = setup
    held, params = _trial(study, ctx)
    study.tell(held, 0.9)
    study.sampler = optuna.samplers.PartialFixedSampler(params, study.sampler)  # a sampler stuck on that point
    running: dict = {}
    halt, repeat = _launch(study, ctx, running, prune=False)
    assert halt is None and not running and repeat.number == 1 and repeat.state == TrialState.FAIL
    assert repeat.user_attrs["duplicate_of"] == held.number and repeat.params == params
    assert tally(study).started == (0,)  # the budget counts the one evaluated trial only
    (run,) = find_runs(tracker, f"tags.`{TAG_TRIAL}` = '1'")
    assert run.info.status == "KILLED" and "trial 0 holds the same configuration" in run.data.tags[TAG_ERROR]
    assert run.data.params == {k: str(v) for k, v in params.items()}


def test_beyond_the_budget_a_repeats_stand_in_is_dropped_and_other_queued_parameters_queued_again(setup):
    """A stand-in (`enqueue_unheld`) is moot once the budget is filled; an interrupted trial's parameters are kept for later."""
    from dataclasses import replace

    from compat.optuna import queued_params
    from flows.tune import _launch
    from studies.configurations import DRAWN_AFTER

    tracker, study, ctx = setup
    ctx = replace(ctx, cfg=ctx.cfg.model_copy(update={"tune": ctx.cfg.tune.model_copy(update={"n_trials": 1})}))
    _, params = _trial(study, ctx, owner=f"{socket.gethostname()}:1:0")  # another driver's running trial fills the budget
    stand_in, kept = {**params, "max_depth": 2}, {**params, "max_depth": 3}
    study.enqueue_trial(stand_in, user_attrs={DRAWN_AFTER: 0})
    study.enqueue_trial(kept)
    for _ in range(2):
        assert _launch(study, ctx, {}, prune=False) == (None, None)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [queued_params(t) for t in waiting] == [kept]
    assert [t.state for t in study.get_trials(deepcopy=False)[1:3]] == [TrialState.FAIL, TrialState.FAIL]
