"""A configuration queued in place of a repeat does not outlive a budget met; other queued parameters wait for a later run."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from flows.prepare import prepare_flow
from flows.tune import tune_flow
from studies.configurations import DRAWN_AFTER
from tests.flows.ledger import check_ledger, load_study

CONFIG = {"n_estimators": 7, "max_depth": 3, "min_samples_leaf": 2, "max_features": "sqrt", "criterion": "gini"}


@pytest.mark.usefixtures("prefect_server")
def test_a_stand_in_left_queued_when_the_budget_filled_is_failed_as_not_run_and_nothing_waits(make_config):
    cfg = make_config(tune__n_trials=2, tune__parallelism=1)
    prepare_flow(cfg)
    tune_flow(cfg)
    # Another worker's repeat queued a stand-in as this one filled the budget: the next run, budget met, drops it.
    load_study(cfg).enqueue_trial(CONFIG, user_attrs={DRAWN_AFTER: 1})
    tune_flow(cfg)
    study = check_ledger(cfg, n_complete=2)  # none WAITING or RUNNING, one run per trial
    dropped = study.trials[-1]
    assert (dropped.number, dropped.state, dropped.user_attrs[DRAWN_AFTER]) == (2, TrialState.FAIL, 1)
    assert "budget was filled" in dropped.user_attrs["error"]

    # Parameters queued for another reason (an interrupted trial's) stay, and so does any stand-in beside them.
    load_study(cfg).enqueue_trial({**CONFIG, "max_depth": 4})
    load_study(cfg).enqueue_trial({**CONFIG, "max_depth": 5}, user_attrs={DRAWN_AFTER: 1})
    tune_flow(cfg)
    states = [t.state for t in load_study(cfg).trials]
    assert states.count(TrialState.WAITING) == 2 and len(states) == 5
