"""Optuna study set-up: samplers by name, storages, the study identity, and recovery of orphans."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tunedag.config import Config, TuneConfig
from tunedag.space import grid, grid_size

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler for an ask/tell driver: exhaustion is checked before asking.

    GridSampler.after_trial calls `study.stop()`, which only works inside `optimize()`.
    """

    def after_trial(self, study, trial, state, values) -> None:  # noqa: D102
        return None


def grid_points_left(study: optuna.Study, space: dict) -> int:
    """Grid points not yet started (running, finished or failed trials all count as started)."""
    started = {t.system_attrs.get("grid_id") for t in study.get_trials(deepcopy=False)} - {None}
    return grid_size(space) - len(started)


def build_sampler(tune: TuneConfig, space: dict, seed: int) -> optuna.samplers.BaseSampler:
    """The configured sampler with every argument explicit."""
    if tune.sampler == "grid":
        return AskTellGridSampler(grid(space), seed=seed)
    if tune.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=tune.tpe.n_startup_trials,
        multivariate=tune.tpe.multivariate,
        constant_liar=tune.tpe.constant_liar,
    )


def build_storage(url: str) -> BaseStorage:
    """An RDB URL (sqlite://, postgresql://) or, for a plain path, Optuna's journal file storage."""
    if "://" in url:
        return RDBStorage(url)
    path = Path(url).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def study_key(cfg: Config, data_version: str) -> str:
    """A short hash of what makes trial values comparable: data, model, space, metric, validation."""
    ident = {
        "data_version": data_version,
        "model": cfg.model.model_dump(mode="json"),
        "space": {k: v.model_dump(mode="json") for k, v in cfg.search_space.items()},
        "metric": cfg.tune.metric,
        "cv_folds": cfg.data.cv_folds,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


def open_study(cfg: Config, data_version: str) -> optuna.Study:
    """Create or load the study for this config and data version (same inputs, same study)."""
    name = f"{cfg.tune.study_name}-{study_key(cfg, data_version)}"
    sampler = build_sampler(cfg.tune, cfg.search_space, cfg.seed)
    study = optuna.create_study(
        study_name=name,
        storage=build_storage(cfg.tune.storage),
        sampler=sampler,
        direction=cfg.tune.resolved_direction,
        load_if_exists=True,
    )
    study.set_user_attr("data_version", data_version)
    study.set_user_attr("metric", cfg.tune.metric)
    return study


def recover_orphans(study: optuna.Study, space: dict) -> list[optuna.trial.FrozenTrial]:
    """Fail trials left RUNNING by a killed run and queue their parameters again.

    Ask/tell gets no heartbeat, so the pipeline does this itself before asking for new trials.
    A trial killed while it was being asked, before all its parameters were set, is failed
    and not re-queued: nothing of it ran.
    """
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=TrialState.FAIL)
        if set(trial.params) == set(space):
            study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number}, skip_if_exists=False)
    return orphans


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


