"""The one-pass tally the trial loop reads: the same counts as asking the study each time, for every worker."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from reporting.render import best_so_far
from studies.storage import FINISHED, build_storage, tally


def _scan(study: optuna.Study, n_trials: int, number: int | None = None) -> int:
    started = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return n_trials - (len(started) if number is None else sum(t.number <= number for t in started))


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_tally_agrees_with_a_scan_of_the_study_as_workers_come_and_go(tmp_path, direction):
    storage = str(tmp_path / "s.journal")
    mine = optuna.create_study(study_name="s", storage=build_storage(storage), direction=direction)
    other = optuna.load_study(study_name="s", storage=build_storage(storage))  # a second worker, its own storage object
    values = [0.3, 0.9, 0.1, 0.9, 0.5]
    running = []
    for i, value in enumerate(values):
        study = mine if i % 2 else other
        trial = study.ask()
        if i == 2:
            study.tell(trial, state=TrialState.PRUNED)
        elif i == 4:
            running.append(trial)  # still running in the other worker
        else:
            study.tell(trial, value)
    study = mine
    study.tell(study.ask(), state=TrialState.FAIL)  # failed trials hold no budget
    counts = tally(study)
    assert counts.finished == 4 and counts.complete == 3
    assert counts.best == best_so_far(study)
    for n_trials in (3, 5, 8):
        assert counts.budget_left(n_trials) == _scan(study, n_trials)
        for number in range(len(study.trials)):
            assert counts.budget_left(n_trials, number) == _scan(study, n_trials, number)
    other.tell(running[0], 2.0)
    assert tally(mine).finished == 5, "another worker's trial counts as soon as it is told"


def test_tally_of_an_empty_study(tmp_path):
    study = optuna.create_study(storage=build_storage(str(tmp_path / "s.journal")))
    counts = tally(study)
    assert (counts.finished, counts.complete, counts.best, counts.budget_left(3)) == (0, 0, None, 3)


def _reference(study: optuna.Study) -> tuple:
    """What `tally` counts, by a full scan of the study."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = None
    if complete:
        pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
        top = pick(t.values[0] for t in complete)
        best = next((t.number, t.values[0]) for t in complete if t.values[0] == top)  # the first to reach it
    started = tuple(t.number for t in trials if t.state in (*FINISHED, TrialState.RUNNING))
    return started, sum(t.state in FINISHED for t in trials), len(complete), best


@pytest.mark.parametrize("seed", range(4))
def test_tally_kept_between_calls_agrees_with_a_full_scan_while_trials_run_wait_and_finish_out_of_order(tmp_path, seed):
    import random

    rng = random.Random(seed)
    storage = str(tmp_path / "s.journal")
    mine = optuna.create_study(study_name="s", storage=build_storage(storage), direction=rng.choice(["maximize", "minimize"]))
    other = optuna.load_study(study_name="s", storage=build_storage(storage))
    running: list[tuple[optuna.Study, optuna.Trial]] = []
    for _ in range(120):
        move = rng.random()
        if move < 0.1:
            mine.enqueue_trial({})  # a waiting trial holds the prefix back until it runs
        elif move < 0.45 or not running:
            study = rng.choice([mine, other])
            running.append((study, study.ask()))
        else:
            study, trial = running.pop(rng.randrange(len(running)))  # trials finish in any order
            state = rng.choice([TrialState.COMPLETE] * 3 + [TrialState.PRUNED, TrialState.FAIL])
            study.tell(trial, round(rng.random(), 1)) if state == TrialState.COMPLETE else study.tell(trial, state=state)
        if rng.random() < 0.5:
            counts = tally(mine)
            assert (counts.started, counts.finished, counts.complete, counts.best) == _reference(mine)
            number = rng.randrange(len(mine.trials)) if mine.trials else None
            assert counts.budget_left(50, number) == _scan(mine, 50, number)
