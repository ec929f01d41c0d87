"""Optuna names tunedag needs that Optuna keeps private (checked for 5.0.x by tests/compat).

A trial's storage id is what `BaseStorage` methods take; `Trial` and `Study` hold it and their
storage privately, as Optuna's own samplers use them (e.g. `CmaEsSampler` writes system attrs
through `study._storage` with `trial._trial_id`).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage

SUPPORTED = ("optuna", "5.0", "5.1")


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage id of a live or frozen trial (not its number)."""
    return trial._trial_id


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes."""
    return study._storage


def study_id(study: Any) -> int:
    """The storage id of a study, or of a summary `BaseStorage.get_all_studies` returned."""
    return study._study_id
