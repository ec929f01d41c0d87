"""What a (scheduled) pipeline run does, given the studies already in the storage.

The study name holds a hash of the data version and the config (`tunedag.study.study_name`), so
new data means a new study. This module decides, before tuning:

- the study for this data and config is unfinished: resume it;
- it holds its `tune.n_trials` finished trials: `schedule.on_same_data` says skip the run, or
  add `schedule.add_trials` more;
- there is no such study: start it, warm-started from the best configurations of the most
  recently created study of the same `tune.study_name` and metric (`schedule.warm_start_top_k`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from tunedag.config import Config
from tunedag.config_search import WarmStartConfig
from tunedag.study import FINISHED, build_storage, study_name

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy  # what BaseStorage.get_all_studies returns


@dataclass(frozen=True)
class RunPlan:
    """The config to run with (budget or warm start adjusted), or a skip, and why, in one line."""

    cfg: Config
    skip: bool
    reason: str
    warm_from: str | None = None


def plan_run(cfg: Config, data_version: str, same_data_rule: bool = True) -> RunPlan:
    """Decide how this run tunes; `same_data_rule` False (a `dvc repro`) always resumes or adds nothing.

    Args:
        cfg: The validated config.
        data_version: The md5 of the prepared dataset.
        same_data_rule: Apply `schedule.on_same_data` to a finished study of the same data.

    Returns:
        The plan; its `cfg` is `cfg` with `tune.n_trials` raised or `tune.warm_start` set.
    """
    name, short = study_name(cfg, data_version), data_version[:8]
    if "://" not in cfg.tune.storage and not Path(cfg.tune.storage).is_file():  # decide without creating the journal
        return RunPlan(cfg, False, f"new study {name} for data version {short}, started cold (no study storage yet)")
    storage = build_storage(cfg.tune.storage)
    studies = storage.get_all_studies()
    current = next((s for s in studies if s.study_name == name), None)
    if current is not None:
        finished = len(storage.get_all_trials(current._study_id, deepcopy=False, states=FINISHED))
        n_trials = cfg.tune.n_trials
        if finished < n_trials or not same_data_rule:
            return RunPlan(cfg, False, f"data version {short} has study {name} with {finished} of {n_trials} trials finished: resuming it")
        if cfg.schedule.on_same_data == "skip":
            return RunPlan(cfg, True, f"data version {short} unchanged and study {name} already holds its {finished} trials: "
                                      "skipped (schedule.on_same_data: skip)")
        more = finished + cfg.schedule.add_trials
        return RunPlan(_with_tune(cfg, n_trials=more), False,
                       f"data version {short} unchanged: {cfg.schedule.add_trials} more trials in study {name}, "
                       f"{more} in all (schedule.on_same_data: add_trials)")
    if cfg.tune.warm_start is not None:
        return RunPlan(cfg, False, f"new study {name} for data version {short}, warm-started as tune.warm_start says",
                       cfg.tune.warm_start.study)
    earlier = _latest_earlier(storage, cfg, name)
    if earlier is None or cfg.schedule.warm_start_top_k == 0:
        why = "schedule.warm_start_top_k is 0" if earlier else "no earlier study of the same metric"
        return RunPlan(cfg, False, f"new study {name} for data version {short}, started cold ({why})")
    earlier_version = earlier.user_attrs.get("data_version")
    changed = (f"data version changed ({(earlier_version or '?')[:8]} -> {short})"
               if earlier_version != data_version else "config changed on the same data")
    warm = WarmStartConfig(study=earlier.study_name, top_k=cfg.schedule.warm_start_top_k)
    return RunPlan(_with_tune(cfg, warm_start=warm), False,
                   f"{changed}: new study {name} warm-started from the best {warm.top_k} trials of {earlier.study_name}",
                   earlier.study_name)


def _latest_earlier(storage: BaseStorage, cfg: Config, name: str) -> FrozenStudy | None:
    """The most recently created other study of this `tune.study_name`, metric and directions, with a complete trial."""
    prefix, directions = f"{cfg.tune.study_name}-", [StudyDirection[d.upper()] for d in cfg.tune.directions]
    for summary in sorted(storage.get_all_studies(), key=lambda s: s._study_id, reverse=True):
        attrs = summary.user_attrs
        if (summary.study_name == name or not summary.study_name.startswith(prefix)
                or attrs.get("metric") != cfg.tune.metric or list(summary.directions) != directions):
            continue
        if storage.get_all_trials(summary._study_id, deepcopy=False, states=(TrialState.COMPLETE,)):
            return summary
    return None


def _with_tune(cfg: Config, **changes: object) -> Config:
    """`cfg` with some `tune` keys replaced, validated again."""
    tune = cfg.tune.model_dump() | changes
    return Config.model_validate(cfg.model_dump() | {"tune": tune})
