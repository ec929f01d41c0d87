"""`tunedag status`: where the study for the current data stands and which model versions hold the aliases."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import optuna
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from optuna.trial import TrialState

from reporting.counts import count_text, outcome
from studies.storage import build_storage, study_name
from tracking.lineage import data_name
from tracking.store import client_for, not_created
from tracking.tags import TAG_PLAN, TAG_PROMOTION, TAG_ROLE, TAG_STUDY
from tunedag.config import Config
from tunedag.data import file_md5
from tunedag.errors import redact
from tunedag.problem import TAG_PROBLEM, Problem, read_problem
from tunedag.promotion import CHALLENGER, CHAMPION
from tunedag.selection import score_prefix


def status_lines(cfg: Config) -> list[str]:
    """Plain lines: data version, study progress and best trial, last pipeline run, registry aliases.

    Reads only: a store or storage that does not exist yet is reported, never created.
    """
    if not cfg.paths.prepared.is_file():
        return [f"data: {cfg.paths.prepared} (paths.prepared) not prepared yet; run `tunedag run` or `dvc repro`"]
    version = file_md5(cfg.paths.prepared)
    problem = read_problem(cfg.paths.prepared)
    target = f", target {problem.target!r} ({problem.task})" if problem else ""
    lines = [f"data: {data_name(cfg)}{target}, prepared as {cfg.paths.prepared}, version {version[:8]}"]
    if problem is not None:
        lines.append(f"problem: {problem.describe()[len('problem ') :]}")
    name = study_name(cfg, version)
    if not_created(cfg.tracking.uri):
        return lines + _study_lines(cfg, name, None) + [f"tracking: no MLflow store at {cfg.tracking.uri} yet"]
    client = client_for(cfg.tracking.uri)
    last = _last_pipeline_run(client, cfg, name)
    return lines + _study_lines(cfg, name, last) + _tracking_lines(cfg, client, problem)


def _last_pipeline_run(client, cfg: Config, name: str) -> Run | None:
    """The newest pipeline run of study `name` (what the last `tunedag run` or `dvc repro` tuned), or None."""
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        f"tags.`{TAG_ROLE}` = 'pipeline' and tags.`{TAG_STUDY}` = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def budget_line(n_trials: int, last: Run | None) -> str:
    """The study's trial budget: that of its last pipeline run (raised by `schedule.add_trials`), else tune.n_trials."""
    logged = last.data.params.get("n_trials") if last is not None else None
    if logged is None or int(logged) == n_trials:
        return f"budget {n_trials} (tune.n_trials)"
    return f"budget {int(logged)} (set by its last pipeline run {last.info.run_name}; tune.n_trials is {n_trials})"


def _study_lines(cfg: Config, name: str, last: Run | None) -> list[str]:
    url = cfg.tune.storage
    if "://" not in url and not Path(url).is_file():
        return [f"study: none yet ({url} does not exist)"]
    try:
        study = optuna.load_study(study_name=name, storage=build_storage(url))
    except KeyError:
        return [f"study: {name} not started for this data and config (storage {redact(url)})"]
    trials = study.get_trials(deepcopy=False)
    counts = Counter(outcome(t) for t in trials)
    lines = [f"study: {name}: {len(trials)} trials ({count_text(counts) or 'none'}), " + budget_line(cfg.tune.n_trials, last)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete and len(study.directions) == 1:
        best = study.best_trial
        lines.append(
            f"best: trial {best.number}, {score_prefix(cfg.data.cv_folds)}_{cfg.tune.metric} {best.value:.6g}, params {best.params}"
        )
    return lines


def _tracking_lines(cfg: Config, client, problem: Problem | None) -> list[str]:
    lines = []
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    if exp is not None:
        runs = client.search_runs(
            [exp.experiment_id], f"tags.`{TAG_ROLE}` = 'pipeline'", order_by=["attributes.start_time DESC"], max_results=1
        )
        if runs:
            run = runs[0]
            started = dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            lines.append(
                f"last pipeline run: {run.info.run_name} ({run.info.status}, started {started}), study {run.data.tags.get(TAG_STUDY)}"
            )
            if TAG_PLAN in run.data.tags:
                lines.append(f"  plan: {run.data.tags[TAG_PLAN]}")
            if "tunedag.warm_start_from" in run.data.tags:
                lines.append(f"  warm start: from study {run.data.tags['tunedag.warm_start_from']}")
    model = cfg.final.registered_model
    lines += _registry_lines(client, model, problem)
    for alias in (CHAMPION, CHALLENGER):
        try:
            version = client.get_model_version_by_alias(model, alias)
        except MlflowException:
            lines.append(f"{alias}: none")
            continue
        lines.append(f"{alias}: {model} version {version.version}: {version.tags.get(TAG_PROMOTION, '')}")  # the whole reason
    return lines


def _registry_lines(client, model: str, problem: Problem | None) -> list[str]:
    """The problem the registered model serves, and whether this data is of it (a run of another is refused)."""
    try:
        bound = client.get_registered_model(model).tags.get(TAG_PROBLEM)
    except MlflowException:
        return [f"registered model: {model} not created yet"]
    if bound is None:
        return []
    if problem is None or bound == problem.id:
        return [f"registered model: {model} serves problem {bound}"]
    return [
        f"registered model: {model} serves problem {bound}, not this data's problem {problem.id}: a run would be "
        "refused; set final.registered_model to a new name for this data"
    ]
