"""What a new user meets after the README's path: run timing, the `report` and `status` commands, quiet output."""

from __future__ import annotations

import pytest

from flows._cli import execute
from flows._inputs import CHECKS
from flows.pipeline import pipeline_flow
from reporting import render as report
from reporting.status import status_lines
from tests.flows.ledger import load_study, study_runs
from tracking.store import EXPERIMENT_KIND, client_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _report_command(*overrides: str) -> int:
    """What `tunedag report --set KEY=VALUE ...` runs, in this process: its exit code; it prints to stdout."""
    return execute("flows.report:run", "params.yaml", list(overrides), check=CHECKS.get("flows.report"), prefect_api=True)


def test_a_second_run_adding_trials_reads_true_in_mlflow_status_and_the_terminal(make_config, project, capfd):
    base = {"tune__n_trials": 3, "tune__executor": "thread", "data__cv_folds": 3, "data__val_size": 0.0, "tune__metric": "f1"}
    cfg = make_config(**base)
    pipeline_flow(cfg)
    capfd.readouterr()
    more = make_config(**base, schedule__on_same_data="add_trials", schedule__add_trials=2)
    pipeline_flow(more)  # the registry has a champion now: promotion downloads it to score it again
    out, err = capfd.readouterr()

    assert "Downloading artifacts" not in out + err, "no tqdm bar among the pipeline's lines"
    client = client_for(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    assert experiment.tags.get(EXPERIMENT_KIND[0]) == "custom_model_development"

    study = load_study(more)
    last = max(study_runs(more, study.study_name, "pipeline"), key=lambda r: r.info.start_time)
    final = max(study_runs(more, study.study_name, "final"), key=lambda r: r.info.start_time)
    report_written_ms = (more.paths.report_dir / report.INDEX).stat().st_mtime * 1000
    assert last.info.status == "FINISHED"
    assert last.info.end_time >= report_written_ms - 5 and last.info.end_time >= final.info.end_time, (
        "the pipeline run ends with its last stage (the report), not when tuning ended"
    )

    # `tunedag status` on params.yaml as it stands (tune.n_trials 3): the study's budget is the 5 the last run set.
    lines = status_lines(cfg)
    (line,) = [x for x in lines if x.startswith(f"study: {study.study_name}: 5 trials")]
    assert line.endswith(f"budget 5 (set by its last pipeline run {last.info.run_name}; tune.n_trials is 3)"), line
    assert f"best: trial {study.best_trial.number}, cv_f1 {study.best_value:.6g}, params {study.best_params}" in lines

    capfd.readouterr()
    assert _report_command(*(f"{k.replace('__', '.')}={v}" for k, v in base.items())) == 0
    printed = capfd.readouterr().out
    assert printed.startswith(f"tunedag: study {study.study_name} (5 complete") and "  best trial #" in printed, printed
    assert printed.rstrip().splitlines()[-1].startswith("  MLflow: `make ui`, then http://127.0.0.1:5000/#/experiments/")
    # f1 is a threshold metric: the final model's tuned threshold, its confusion matrix and which trial won, and why.
    assert "  test confusion matrix (predicted 0 / 1): true 0: " in printed, printed
    assert "(tuned out-of-fold for tune.metric)" in printed and "  predicted 1: " in printed
    assert "\n  chosen: trial " in printed
