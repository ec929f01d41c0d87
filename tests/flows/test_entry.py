"""The stage commands' shared entry (flows._cli): a config loaded early for the warm-up is the one the run gets."""

from __future__ import annotations

import pytest

from flows import _cli
from flows._inputs import tune_summary


@pytest.fixture(autouse=True)
def no_early_config(monkeypatch):
    monkeypatch.setattr(_cli, "_EARLY", None)


def test_the_config_warmed_up_early_is_the_one_the_run_gets_and_it_is_used_once(project):
    warmed, ran = [], []
    _cli.warm_start(warmed.append, "params.yaml", ["tune.n_trials=7"])

    assert _cli.execute(ran.append, "params.yaml", ["tune.n_trials=7"]) == 0
    assert _cli.execute(ran.append, "params.yaml", ["tune.n_trials=7"]) == 0
    assert warmed[0].tune.n_trials == 7 and ran[0] is warmed[0]
    assert ran[1] is not warmed[0] and ran[1] == warmed[0]  # loaded again: the early one served one run


def test_other_arguments_than_the_early_ones_are_loaded_as_given(project):
    warmed, ran = [], []
    _cli.warm_start(warmed.append, "params.yaml", ["tune.n_trials=7"])

    assert _cli.execute(ran.append, "params.yaml", ["tune.n_trials=9"]) == 0
    assert ran[0].tune.n_trials == 9


def test_a_config_that_does_not_validate_ends_the_command_at_the_warm_start_and_warms_nothing(project, capsys):
    """Refused before the flow's module is imported: the message comes in about 2 s instead of 6."""
    warmed = []
    with pytest.raises(SystemExit) as stop:
        _cli.warm_start(warmed.append, "params.yaml", ["model.estimator=sklearn.nope.Thing"])

    assert stop.value.code == 2 and warmed == []
    assert capsys.readouterr().err.startswith("tunedag: error: params.yaml is invalid: model.estimator")


def test_a_missing_stage_input_ends_the_command_at_the_warm_start(project, capsys):
    """`tunedag train` before any tune: refused on the missing tune summary, not after the flow's imports."""
    warmed = []
    with pytest.raises(SystemExit) as stop:
        _cli.warm_start(warmed.append, "params.yaml", [], tune_summary)

    assert stop.value.code == 2 and warmed == []
    assert "(paths.tune_summary) is missing" in capsys.readouterr().err


def test_a_config_that_does_not_validate_without_a_warm_start_is_reported_by_the_run(project, capsys):
    ran = []
    assert _cli.execute(ran.append, "params.yaml", ["model.estimator=sklearn.nope.Thing"]) == 2
    assert ran == [] and "model.estimator" in capsys.readouterr().err


def test_the_tunedag_command_imports_neither_prefect_nor_mlflow_nor_sklearn_before_it_runs_one():
    """`tunedag --help` answers at once, and `tunedag tune` launches Prefect's server before the heavy imports."""
    import json
    import subprocess
    import sys

    code = "import sys, json, flows.cli; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'mlflow', 'sklearn', 'optuna'})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []
