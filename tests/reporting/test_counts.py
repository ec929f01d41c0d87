"""A study's trials counted by outcome (reporting.counts), as the report, the metrics and `tunedag status` show them."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from reporting.counts import REPEATS, count_text, trial_counts
from studies.configurations import DUPLICATE_OF


def test_repeats_not_run_are_counted_apart_from_failures():
    study = optuna.create_study()
    for state, attrs in [(TrialState.COMPLETE, {}), (TrialState.FAIL, {}), (TrialState.FAIL, {DUPLICATE_OF: 0})]:
        trial = study.ask()
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
        study.tell(trial, 0.5) if state == TrialState.COMPLETE else study.tell(trial, state=state)
    study.ask()  # running: not counted
    assert trial_counts(study) == {"complete": 1, "pruned": 0, "fail": 1, REPEATS: 1}


def test_count_text_names_repeats_only_when_there_are_some():
    counts = {"complete": 30, "pruned": 0, "fail": 0, REPEATS: 0}
    assert count_text(counts) == "30 complete, 0 pruned, 0 fail"
    assert count_text({**counts, REPEATS: 1}) == "30 complete, 0 pruned, 0 fail, 1 repeat not run"
    assert count_text({**counts, REPEATS: 4}) == "30 complete, 0 pruned, 0 fail, 4 repeats not run"
