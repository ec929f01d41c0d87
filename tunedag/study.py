"""Optuna study set-up: storages, the study identity, and recovery of orphans."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tunedag.config import Config
from tunedag.samplers import build_pruner, build_sampler
from tunedag.space import grid_size, is_complete

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def grid_points_left(study: optuna.Study, space: dict) -> int:
    """Grid points not yet started (running, finished or failed trials all count as started)."""
    started = {t.system_attrs.get("grid_id") for t in study.get_trials(deepcopy=False)} - {None}
    return grid_size(space) - len(started)


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
        "objectives": cfg.tune.objectives,
        "cv_folds": cfg.data.cv_folds,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


def open_study(cfg: Config, data_version: str) -> optuna.Study:
    """Create or load the study for this config and data version (same inputs, same study)."""
    name = f"{cfg.tune.study_name}-{study_key(cfg, data_version)}"
    study = optuna.create_study(
        study_name=name,
        storage=build_storage(cfg.tune.storage),
        sampler=build_sampler(cfg),
        pruner=build_pruner(cfg),
        directions=cfg.tune.directions,
        load_if_exists=True,
    )
    study.set_user_attr("data_version", data_version)
    study.set_user_attr("metric", cfg.tune.metric)
    return study


def recover_orphans(study: optuna.Study, families: dict) -> list[optuna.trial.FrozenTrial]:
    """Fail trials left RUNNING by a killed run and queue their parameters again.

    Ask/tell gets no heartbeat, so the pipeline does this itself before asking for new trials.
    A trial killed while it was being asked, before all its parameters were set, is failed
    and not re-queued: nothing of it ran.
    """
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=TrialState.FAIL)
        if is_complete(trial.params, families):
            study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number}, skip_if_exists=False)
    return orphans


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


