"""What a (scheduled) pipeline run does, given the studies already in the storage.

The study name holds a hash of the data version and the config (`studies.storage.study_name`), so
new data means a new study. This module decides, before tuning:

- the study for this data and config is unfinished: resume it;
- it holds its `tune.n_trials` finished trials: `schedule.on_same_data` says skip the run, or
  add `schedule.add_trials` more;
- there is no such study: start it. A scheduled or pipeline run (`tunedag run`) warm-starts it
  from the best configurations (`schedule.warm_start_top_k`) of the latest earlier study of the
  same problem (task, target, feature columns: `tunedag.problem`), `tune.study_name` and metric
  whose configurations still fit the space. A stage command (`dvc repro`, `tunedag tune`)
  warm-starts only from the study `tune.warm_start` names in params.yaml, so a fresh clone and a
  machine with earlier studies in `optuna/` run the same study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from compat.optuna import study_id
from studies.storage import FINISHED, build_storage, study_name
from tunedag.config import Config
from tunedag.config_search import WarmStartConfig
from tunedag.problem import STUDY_ATTR, Problem, read_problem
from tunedag.selection import top_k_trials
from tunedag.space import fit_to_space


@dataclass(frozen=True)
class RunPlan:
    """The config to run with (budget or warm start adjusted), or a skip, and why, in one line."""

    cfg: Config
    skip: bool
    reason: str
    warm_from: str | None = None


def plan_run(
    cfg: Config,
    data_version: str,
    same_data_rule: bool = True,
    warm_from_history: bool | None = None,
    problem: Problem | None = None,
) -> RunPlan:
    """Decide how this run tunes; `same_data_rule` False (a `dvc repro`) always resumes or adds nothing.

    Args:
        cfg: The validated config.
        data_version: The md5 of the prepared dataset.
        same_data_rule: Apply `schedule.on_same_data` to a finished study of the same data.
        warm_from_history: Warm-start a new study from the latest earlier study of the same problem
            found in the storage; default `same_data_rule` (the pipeline run yes, a stage command no:
            there only the study `tune.warm_start` names, an input versioned in params.yaml).
        problem: The problem of the data; default the one recorded in `paths.prepared`.

    Returns:
        The plan; its `cfg` is `cfg` with `tune.n_trials` raised or `tune.warm_start` set.
    """
    name, short = study_name(cfg, data_version), data_version[:8]
    problem = problem or read_problem(cfg.paths.prepared)
    if "://" not in cfg.tune.storage and not Path(cfg.tune.storage).is_file():  # decide without creating the journal
        return RunPlan(cfg, False, f"new study {name} for data version {short}, started cold (no study storage yet)")
    storage = build_storage(cfg.tune.storage)
    studies = storage.get_all_studies()
    current = next((s for s in studies if s.study_name == name), None)
    if current is not None:
        finished = len(storage.get_all_trials(study_id(current), deepcopy=False, states=FINISHED))
        n_trials = cfg.tune.n_trials
        if finished < n_trials or not same_data_rule:
            return RunPlan(
                cfg, False, f"data version {short} has study {name} with {finished} of {n_trials} trials finished: resuming it"
            )
        if cfg.schedule.on_same_data == "skip":
            return RunPlan(
                cfg,
                True,
                f"data version {short} unchanged and study {name} already holds its {finished} trials: "
                "skipped (schedule.on_same_data: skip)",
            )
        more = finished + cfg.schedule.add_trials
        return RunPlan(
            _with_tune(cfg, n_trials=more),
            False,
            f"data version {short} unchanged: {cfg.schedule.add_trials} more trials in study {name}, "
            f"{more} in all (schedule.on_same_data: add_trials)",
        )
    if cfg.tune.warm_start is not None:
        return RunPlan(
            cfg,
            False,
            f"new study {name} for data version {short}, warm-started from the best {cfg.tune.warm_start.top_k} "
            f"trials of {cfg.tune.warm_start.study}, as tune.warm_start says",
            cfg.tune.warm_start.study,
        )
    if not (same_data_rule if warm_from_history is None else warm_from_history):
        return RunPlan(
            cfg,
            False,
            f"new study {name} for data version {short}, started cold (a stage command warm-starts only "
            "from the study tune.warm_start names in params.yaml)",
        )
    if problem is None:
        return RunPlan(
            cfg,
            False,
            f"new study {name} for data version {short}, started cold (the problem of {cfg.paths.prepared} is not recorded)",
        )
    earlier, others = _latest_earlier(storage, cfg, name, problem.id)
    if earlier is None or cfg.schedule.warm_start_top_k == 0:
        why = (
            "schedule.warm_start_top_k is 0"
            if earlier
            else f"no earlier study of problem {problem.id} with the same metric whose configurations fit the space"
            + (f"; {others} of another or an unrecorded problem passed over" if others else "")
        )
        return RunPlan(cfg, False, f"new study {name} for data version {short}, started cold ({why})")
    earlier_version = earlier.user_attrs.get("data_version")
    changed = (
        f"data version changed ({(earlier_version or '?')[:8]} -> {short})"
        if earlier_version != data_version
        else "config changed on the same data"
    )
    warm = WarmStartConfig(study=earlier.study_name, top_k=cfg.schedule.warm_start_top_k)
    return RunPlan(
        _with_tune(cfg, warm_start=warm),
        False,
        f"{changed}: new study {name} warm-started from the best {warm.top_k} trials of {earlier.study_name} "
        f"(the same problem, {problem.id})",
        earlier.study_name,
    )


def _latest_earlier(storage: BaseStorage, cfg: Config, name: str, problem_id: str) -> tuple[Any | None, str]:
    """The most recently created other study of this problem, `tune.study_name`, metric and directions whose best
    configurations still fit the space; with how many studies of other problems were passed over (words, or "").
    """
    prefix, directions = f"{cfg.tune.study_name}-", [StudyDirection[d.upper()] for d in cfg.tune.directions]
    passed = 0
    for summary in sorted(storage.get_all_studies(), key=study_id, reverse=True):  # FrozenStudy: Optuna keeps the type private
        attrs = summary.user_attrs
        if (
            summary.study_name == name
            or not summary.study_name.startswith(prefix)
            or attrs.get("metric") != cfg.tune.metric
            or list(summary.directions) != directions
        ):
            continue
        if attrs.get(STUDY_ATTR) != problem_id:
            passed += 1
            continue
        complete = storage.get_all_trials(study_id(summary), deepcopy=False, states=(TrialState.COMPLETE,))
        best = top_k_trials(complete, cfg.tune.resolved_direction, max(cfg.schedule.warm_start_top_k, 1))
        if any(fit_to_space(t.params, cfg.families) == t.params for t in best):
            return summary, ""
    return None, f"{passed} stud{'y' if passed == 1 else 'ies'}" if passed else ""


def _with_tune(cfg: Config, **changes: object) -> Config:
    """`cfg` with some `tune` keys replaced, validated again."""
    tune = cfg.tune.model_dump() | changes
    return Config.model_validate(cfg.model_dump() | {"tune": tune})
