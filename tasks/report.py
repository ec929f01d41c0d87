"""The study report as Prefect tasks: read what MLflow holds, write the report, log it on the pipeline run."""

from __future__ import annotations

import re
import time
from pathlib import Path

import optuna
from prefect import task
from prefect.cache_policies import NO_CACHE

from reporting import render as report
from studies.storage import build_storage
from tracking.lineage import data_name
from tracking.store import Tracker
from tunedag.config import Config
from tunedag.errors import TunedagError
from tunedag.problem import read_problem

REPORT_ARTIFACT = "report"
# MLflow 3's UI keeps its GenAI / model-training layout in the browser's local storage (GenAI when unset) and
# ignores the experiment's kind for it; a link that names the layout opens on the run as tunedag records it.
UI_LAYOUT = "?workflowType=machine_learning"
# Where `make ui` serves the local store (see the Makefile).
LOCAL_UI = "http://127.0.0.1:5000"


def load_tuned_study(cfg: Config, summary: dict) -> optuna.Study:
    """The study the tune stage summarised, read from `tune.storage` (nothing is written to it)."""
    try:
        return optuna.load_study(study_name=summary["study_name"], storage=build_storage(cfg.tune.storage))
    except KeyError:
        raise TunedagError(
            f"Study {summary['study_name']} named in {cfg.paths.tune_summary} (paths.tune_summary) is not in "
            f"{cfg.tune.storage} (tune.storage); run the tune stage again (dvc repro tune)."
        ) from None


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The MLflow UI page of a run, in its model-training layout: on the tracking server, or where `make ui` serves the local store."""
    fragment = f"/#/experiments/{experiment_id}/runs/{run_id}{UI_LAYOUT}"
    if tracking_uri.startswith(("http://", "https://")):
        return re.sub(r"//[^/@]*@", "//", tracking_uri).rstrip("/") + fragment  # a link without credentials
    return LOCAL_UI + fragment if tracking_uri.startswith("sqlite:") else None


def data_facts(cfg: Config, study: optuna.Study, summary: dict) -> dict[str, str]:
    """What the study was tuned on, for the report and the closing summary: data and target, problem, warm start."""
    problem = read_problem(cfg.paths.prepared)
    facts = {"data": f"{data_name(cfg)}, prepared as {cfg.paths.prepared} (data version {summary['data_version'][:8]})"}
    if problem is not None:
        facts |= {"target": f"{problem.target!r} ({problem.task})", "problem": problem.describe()}
    source = study.user_attrs.get("warm_start_from")
    queued = sum("warm_start_from" in t.user_attrs for t in study.get_trials(deepcopy=False))
    facts["warm start"] = f"{queued} trials queued from the best of study {source}" if source else "none (started cold)"
    if summary.get("chosen"):
        facts["chosen"] = summary["chosen"]  # tuned, or an untuned baseline that no tuned trial beat
    return facts


@task(cache_policy=NO_CACHE)
def outcome_on_test(cfg: Config) -> report.ClassOutcome | None:
    """A classifier's confusion matrix, decision threshold and positive rates on the test split; None for regression.

    None too for a train_fn family (its own code scored the test rows) or a missing model folder.
    """
    from tasks.evaluation import load_final_model
    from tasks.training import CUSTOM_RESULT
    from tunedag.data import file_md5, load_prepared
    from tunedag.metrics import decision_threshold

    problem, model_dir = read_problem(cfg.paths.prepared), cfg.paths.model_dir
    if problem is None or problem.task != "classification" or not (model_dir / "MLmodel").is_file():
        return None
    if (model_dir / CUSTOM_RESULT).is_file():
        return None
    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    X, y = prep.xy("test")
    model = load_final_model(model_dir, cfg.model.trusted_types)
    return report.class_outcome(y, model.predict(X), decision_threshold(model))


@task(cache_policy=NO_CACHE)
def gather_series(cfg: Config, tracker: Tracker, study: optuna.Study) -> report.TrackedSeries:
    """Per-fold scores of every complete trial and per-epoch curves of the best few, from the trial runs."""
    complete = report.complete_trials(study)
    runs = {t.number: t.user_attrs["mlflow_run_id"] for t in complete if t.user_attrs.get("mlflow_run_id")}
    folds = {}
    if cfg.data.cv_folds >= 2:
        key = f"fold_{cfg.tune.metric}"
        for number, run_id in runs.items():
            folds[number] = [m.value for m in sorted(tracker.client.get_metric_history(run_id, key), key=lambda m: m.step)]
    reverse = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    best = sorted((t for t in complete if t.number in runs), key=lambda t: t.values[0], reverse=reverse)[: report.CURVE_TRIALS]
    curves = {t.number: _curves(tracker, runs[t.number]) for t in best}
    return report.TrackedSeries(folds=folds, curves={n: c for n, c in curves.items() if c})


def _curves(tracker: Tracker, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of the run logged at more than one step, except the CV folds and fidelity steps."""
    out = {}
    for key in tracker.client.get_run(run_id).data.metrics:
        if key.startswith("fold_") or key.endswith("_by_step"):
            continue
        history = tracker.client.get_metric_history(run_id, key)
        if len(history) > 1:
            out[key] = sorted((m.step, m.value) for m in history)
    return out


@task(cache_policy=NO_CACHE)
def write_study_report(cfg: Config, study: optuna.Study, series: report.TrackedSeries, ctx: report.ReportContext) -> Path:
    """Draw the figures and write `paths.report_dir` (index.html, interactive.html, PNGs, DVC plot tables)."""
    names = ctx.summary.get("objectives") or [cfg.tune.metric]
    figures = report.build_figures(study, names, series, seed=cfg.seed)
    tables = report.plot_tables(study, names, figures.importances, series.folds)
    return report.write_report(cfg.paths.report_dir, figures, tables, ctx)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5])
def log_report(tracker: Tracker, run_id: str, report_dir: Path) -> None:
    """Upload the report folder to the pipeline's parent run, under `report/`."""
    tracker.client.log_artifacts(run_id, str(report_dir), REPORT_ARTIFACT)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5])
def end_pipeline_run(tracker: Tracker, run_id: str) -> None:
    """Set the pipeline run's end to now, its status unchanged: the report is the last stage that writes to it.

    The tune stage closes the run when the study is summarised; train, evaluate and the report log on it
    afterwards, so without this its Duration in the MLflow UI would cover the tuning only.
    """
    status = tracker.client.get_run(run_id).info.status
    tracker.client.set_terminated(run_id, status=status, end_time=int(time.time() * 1000))
