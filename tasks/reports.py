"""Study summaries for the next stages, `dvc metrics` and `dvc plots`, and the parent MLflow run."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.outputs import write_csv, write_json
from tasks.tracking import Tracker, log_values
from tunedag.config import Config


@task(cache_policy=NO_CACHE)
def summarise_study(cfg: Config, study: optuna.Study, tracker: Tracker, parent_run_id: str, data_version: str) -> dict:
    """Write the tune summary, metrics and optimisation history; log the best trial on the parent run."""
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)}
    best = study.best_trial
    metric = cfg.tune.metric
    summary = {
        "study_name": study.study_name,
        "parent_run_id": parent_run_id,
        "data_version": data_version,
        "metric": metric,
        "direction": cfg.tune.resolved_direction,
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
    }
    write_json(cfg.paths.tune_summary, summary)
    write_json(cfg.paths.tune_metrics, {f"best_val_{metric}": best.value, "best_trial": best.number,
                                        "n_trials": counts["complete"], "n_failed": counts["fail"], "n_pruned": counts["pruned"]})
    write_csv(cfg.paths.history_plot, ["trial", metric, f"best_{metric}"], _history(trials, cfg.tune.resolved_direction))
    log_values(tracker.client, parent_run_id, params={f"best.{k}": v for k, v in best.params.items()},
               metrics={f"best_val_{metric}": best.value, "n_complete_trials": counts["complete"], "n_failed_trials": counts["fail"]},
               tags={"tunedag.best_trial": str(best.number)})
    return summary


def _history(trials: list, direction: str) -> list[tuple[int, float, float]]:
    better = max if direction == "maximize" else min
    rows, best = [], None
    for t in trials:
        if t.state != TrialState.COMPLETE:
            continue
        best = t.value if best is None else better(best, t.value)
        rows.append((t.number, t.value, best))
    return rows
