"""Study summaries for the next stages, `dvc metrics` and `dvc plots`, and the parent MLflow run."""

from __future__ import annotations

import math
from copy import deepcopy

import optuna
from optuna.trial import TrialState
from prefect import task
from prefect.cache_policies import NO_CACHE

from reporting.counts import REPEATS, trial_counts
from stageio.files import write_csv, write_json
from tracking.runs import log_values
from tracking.store import Tracker
from tunedag.config import Config
from tunedag.metrics import METRICS
from tunedag.presets import untuned_family
from tunedag.selection import TIE_BREAK, best_or_untuned, best_with_tie_break, score_prefix, select_from_front, top_k_trials

# The best configurations listed in the summary, for an ensemble of the top K (K <= this).
TOP_TRIALS_KEPT = 50


def choose_final(cfg: Config, study: optuna.Study, tracker: Tracker | None = None) -> optuna.trial.FrozenTrial:
    """The best trial, or for several objectives the Pareto-front trial picked by `tune.select`.

    With one objective, a tuned trial that only ties an untuned baseline (a family's own defaults,
    which the preset queues first) loses to it; other ties go to the lower validation log-loss
    (rmse for regression), read from the tied trials' MLflow runs when `tracker` is given.
    """
    if len(study.directions) != 1:
        return select_from_front(study.best_trials, cfg.tune.directions, cfg.tune.select)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    direction = cfg.tune.resolved_direction
    kind = METRICS[cfg.tune.metric].task if cfg.tune.metric in METRICS else None  # a train_fn may name its own metric
    tie_break = TIE_BREAK.get(kind) if tracker is not None and kind else None
    tie_break = None if tie_break == cfg.tune.metric else tie_break
    named = f"{score_prefix(cfg.data.cv_folds)}_{tie_break}"  # as the trial runs carry it: cv_log_loss or val_log_loss
    tied = _with_tie_break_metric(tracker, _tied_with_best(complete, direction), tie_break, named) if tie_break else []
    pool = tied + [t for t in complete if t.number not in {x.number for x in tied}]
    return best_or_untuned(pool, direction, lambda t: untuned_family(t.params, cfg.families) is not None, tie_break)


def chosen_as(cfg: Config, study: optuna.Study, chosen: optuna.trial.FrozenTrial) -> str:
    """Whether the chosen configuration is tuned or a family's untuned defaults, against the best untuned baseline."""
    if len(study.directions) != 1:
        return f"trial {chosen.number}, picked from the Pareto front by tune.select ({cfg.tune.select.rule})"
    metric, complete = cfg.tune.metric, study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    family = untuned_family(chosen.params, cfg.families)
    if family is not None:
        named = f"{family}'s" if family else "the estimator's"
        return f"trial {chosen.number}, {named} untuned defaults: no tuned trial beat them on validation {metric}"
    baselines = [t for t in complete if untuned_family(t.params, cfg.families) is not None]
    if not baselines:
        return f"trial {chosen.number}, tuned (no untuned baseline ran in this study)"
    best = best_with_tie_break(baselines, cfg.tune.resolved_direction, None)
    name = untuned_family(best.params, cfg.families)
    return (
        f"trial {chosen.number}, tuned: validation {metric} {chosen.values[0]:.6g} against {best.values[0]:.6g} "
        f"for the best untuned baseline ({name or 'the estimator'}'s defaults, trial {best.number})"
    )


def _tied_with_best(complete: list, direction: str) -> list:
    if not complete:
        return []
    top = best_with_tie_break(complete, direction, None).values[0]
    return [t for t in complete if math.isclose(t.values[0], top, rel_tol=0, abs_tol=1e-12)]


def _with_tie_break_metric(tracker: Tracker, tied: list, metric: str, named: str) -> list:
    """Copies of the tied trials holding `metric` in `user_attrs["metrics"]`: their runs' metric `named` (from MLflow)."""
    if len(tied) < 2:
        return []
    out = []
    for trial in tied:
        copy = deepcopy(trial)
        run_id = trial.user_attrs.get("mlflow_run_id")
        value = tracker.client.get_run(run_id).data.metrics.get(named) if run_id else None
        copy.user_attrs = {**copy.user_attrs, "metrics": {} if value is None else {metric: value}}
        out.append(copy)
    return out


@task(cache_policy=NO_CACHE)
def summarise_study(cfg: Config, study: optuna.Study, tracker: Tracker, parent_run_id: str, data_version: str) -> dict:
    """Write the tune summary, metrics and optimisation history; log the chosen trial on the parent run."""
    trials = study.get_trials(deepcopy=False)
    counts = trial_counts(study)
    best, metric, prefix = choose_final(cfg, study, tracker), cfg.tune.metric, score_prefix(cfg.data.cv_folds)
    chosen = chosen_as(cfg, study, best)
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
        "score_prefix": prefix,  # the best values are cross-validated (cv) or on the validation split (val)
        "direction": cfg.tune.resolved_direction,
        "objectives": [metric, *cfg.tune.objectives],
        "best_trial": best.number,
        "best_value": best.values[0],
        "best_values": best.values,
        "best_params": best.params,
        "chosen": chosen,
        "pareto_front": front,
        "top_trials": [{"number": t.number, "value": t.values[0], "params": t.params} for t in top],
    }
    write_json(cfg.paths.tune_summary, summary)
    write_json(
        cfg.paths.tune_metrics,
        {
            f"best_{prefix}_{metric}": best.values[0],
            "best_trial": best.number,
            "n_trials": counts["complete"],
            "n_failed": counts["fail"],
            "n_pruned": counts["pruned"],
            "n_repeats_not_run": counts[REPEATS],
            **{f"best_{prefix}_{o}": v for o, v in zip(cfg.tune.objectives, best.values[1:])},
        },
    )
    write_csv(cfg.paths.history_plot, ["trial", metric, f"best_{metric}"], _history(complete, cfg.tune.resolved_direction))
    log_values(
        tracker.client,
        parent_run_id,
        params={f"best.{k}": v for k, v in best.params.items()},
        metrics={
            f"best_{prefix}_{metric}": best.values[0],
            "n_complete_trials": counts["complete"],
            "n_failed_trials": counts["fail"],
            "n_pruned_trials": counts["pruned"],
        },
        tags={"tunedag.best_trial": str(best.number), "tunedag.chosen": chosen},
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
