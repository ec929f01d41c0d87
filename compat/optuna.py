"""Optuna names tunedag needs that Optuna keeps private (checked for 5.0.x by tests/compat).

A trial's storage id is what `BaseStorage` methods take; `Trial` and `Study` hold it and their
storage privately, as Optuna's own samplers use them (e.g. `CmaEsSampler` writes system attrs
through `study._storage` with `trial._trial_id`). The journal file's path and lock are what a
writer must hold to append or mend the file as Optuna does; the search-space transform to
[0, 1] is the one Optuna's CMA-ES and GP samplers use. An enqueued trial's parameters live in a
system attr that `Study.enqueue_trial` writes and `Study.ask` reads.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file

SUPPORTED = ("optuna", "5.0", "5.1")

SearchSpaceTransform = _SearchSpaceTransform  # numeric space <-> [0, 1]^d with rounding back to int / step values


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage id of a live or frozen trial (not its number)."""
    return trial._trial_id


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes."""
    return study._storage


def study_id(study: Any) -> int:
    """The storage id of a study, or of a summary `BaseStorage.get_all_studies` returned."""
    return study._study_id


def rdb_storage(study: optuna.Study) -> RDBStorage | None:
    """The RDBStorage under a study's storage (Optuna wraps it in a cache), or None for another kind."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def journal_path(backend: JournalFileBackend) -> Path:
    """The file a journal backend appends to."""
    return Path(backend._file_path)


def journal_lock(backend: JournalFileBackend) -> AbstractContextManager[None]:
    """Holds the journal file's lock (the one every Optuna writer takes) for a `with` block."""
    return get_lock_file(backend._lock)


def queued_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The parameters `Study.enqueue_trial` fixed for a trial (empty for a trial not enqueued)."""
    return trial.system_attrs.get("fixed_params") or {}


def distribution_contains(dist: optuna.distributions.BaseDistribution, value: Any) -> bool:
    """Whether `value` (external representation) lies in `dist`; raises ValueError for a categorical value not among its choices."""
    return bool(dist._contains(dist.to_internal_repr(value)))
