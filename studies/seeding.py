"""Configurations queued before sampling: the user's own (`tune.enqueue`) and a warm start."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from studies.storage import build_storage
from tunedag.config import Config
from tunedag.errors import ConfigError, redact
from tunedag.problem import STUDY_ATTR, read_problem
from tunedag.selection import top_k_trials
from tunedag.space import check_configuration, fit_to_space


def enqueue_manual(study: optuna.Study, cfg: Config) -> int:
    """Queue each `tune.enqueue` configuration once (never again on a re-run); return how many are new."""
    before = len(study.get_trials(deepcopy=False))
    for i, params in enumerate(cfg.tune.enqueue):
        check_configuration(params, cfg, f"tune.enqueue[{i}]")
        study.enqueue_trial(params, user_attrs={"source": "tune.enqueue"}, skip_if_exists=True)
    return len(study.get_trials(deepcopy=False)) - before


def check_warm_start_source(cfg: Config) -> None:
    """Refuse a warm start from a study that is not there, or of another problem, before anything is written."""
    ws = cfg.tune.warm_start
    if ws is None:
        return
    url = ws.storage or cfg.tune.storage
    names = optuna.get_all_study_names(build_storage(url)) if "://" in url or Path(url).is_file() else []
    if ws.study not in names:
        raise ConfigError(
            f"tune.warm_start.study {ws.study!r} is not in the storage {redact(url)}; studies there: {', '.join(names) or 'none'}"
        )
    problem = read_problem(cfg.paths.prepared)
    source = optuna.load_study(study_name=ws.study, storage=build_storage(url)).user_attrs.get(STUDY_ATTR)
    if (
        problem is not None and source is not None and source != problem.id
    ):  # a study from before problems were recorded: the user's call
        raise ConfigError(
            f"tune.warm_start.study {ws.study!r} was tuned on problem {source}, "
            f"not on this data's {problem.describe()}: a study's best configurations only seed a study of "
            "the same task, target and feature columns. Name a study of this problem in tune.warm_start, or remove it."
        )


def warm_start(study: optuna.Study, cfg: Config) -> list[int]:
    """Queue the best `top_k` configurations of an earlier study, once, into a study with no trials yet."""
    ws = cfg.tune.warm_start
    if ws is None or study.get_trials(deepcopy=False):
        return []
    try:
        source = optuna.load_study(study_name=ws.study, storage=build_storage(ws.storage or cfg.tune.storage))
    except KeyError:
        raise ConfigError(
            f"tune.warm_start.study {ws.study!r} does not exist in that storage; list studies with optuna.get_all_study_names"
        ) from None
    complete = source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    chosen = top_k_trials(complete, source.directions[0].name.lower(), ws.top_k)
    for trial in chosen:
        params = fit_to_space(trial.params, cfg.families)
        study.enqueue_trial(params, user_attrs={"warm_start_from": f"{ws.study}#{trial.number}"}, skip_if_exists=True)
    study.set_user_attr("warm_start_from", ws.study)
    return [t.number for t in chosen]
