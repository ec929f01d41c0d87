"""Study summaries for the next stages, `dvc metrics` and `dvc plots`, and the parent MLflow run."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.outputs import write_csv, write_json
from tasks.tracking import Tracker, log_values
from tunedag.config import Config
from tunedag.selection import select_from_front, top_k_trials

# The best configurations listed in the summary, for an ensemble of the top K (K <= this).
TOP_TRIALS_KEPT = 50


def choose_final(cfg: Config, study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best trial, or for several objectives the Pareto-front trial picked by `tune.select`."""
    if len(study.directions) == 1:
        return study.best_trial
    return select_from_front(study.best_trials, cfg.tune.directions, cfg.tune.select)


@task(cache_policy=NO_CACHE)
def summarise_study(cfg: Config, study: optuna.Study, tracker: Tracker, parent_run_id: str, data_version: str) -> dict:
    """Write the tune summary, metrics and optimisation history; log the chosen trial on the parent run."""
    trials = study.get_trials(deepcopy=False)
    counts = {
        s.name.lower(): sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    }
    best, metric = choose_final(cfg, study), cfg.tune.metric
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    top = top_k_trials(complete, cfg.tune.resolved_direction, TOP_TRIALS_KEPT)
    front = (
        [{"number": t.number, "values": t.values, "params": t.params} for t in study.best_trials] if cfg.tune.objectives else []
    )
    summary = {
        "study_name": study.study_name,
        "parent_run_id": parent_run_id,
        "data_version": data_version,
        "metric": metric,
        "direction": cfg.tune.resolved_direction,
        "objectives": [metric, *cfg.tune.objectives],
        "best_trial": best.number,
        "best_value": best.values[0],
        "best_values": best.values,
        "best_params": best.params,
        "pareto_front": front,
        "top_trials": [{"number": t.number, "value": t.values[0], "params": t.params} for t in top],
    }
    write_json(cfg.paths.tune_summary, summary)
    write_json(
        cfg.paths.tune_metrics,
        {
            f"best_val_{metric}": best.values[0],
            "best_trial": best.number,
            "n_trials": counts["complete"],
            "n_failed": counts["fail"],
            "n_pruned": counts["pruned"],
            **{f"best_val_{o}": v for o, v in zip(cfg.tune.objectives, best.values[1:])},
        },
    )
    write_csv(cfg.paths.history_plot, ["trial", metric, f"best_{metric}"], _history(complete, cfg.tune.resolved_direction))
    log_values(
        tracker.client,
        parent_run_id,
        params={f"best.{k}": v for k, v in best.params.items()},
        metrics={
            f"best_val_{metric}": best.values[0],
            "n_complete_trials": counts["complete"],
            "n_failed_trials": counts["fail"],
            "n_pruned_trials": counts["pruned"],
        },
        tags={"tunedag.best_trial": str(best.number)},
    )
    for t in study.best_trials if cfg.tune.objectives else []:
        if "mlflow_run_id" in t.user_attrs:
            log_values(tracker.client, t.user_attrs["mlflow_run_id"], tags={"tunedag.pareto": "true"})
    return summary


def _history(complete: list, direction: str) -> list[tuple[int, float, float]]:
    better = max if direction == "maximize" else min
    rows, best = [], None
    for t in complete:
        best = t.values[0] if best is None else better(best, t.values[0])
        rows.append((t.number, t.values[0], best))
    return rows
