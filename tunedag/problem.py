"""The problem a dataset poses: its task, its target and its feature schema (column names and kinds).

Studies, warm starts and registered models belong to one problem: a new data version with the
same columns and target keeps the problem's id (`Problem.id`), so it can be warm-started from
and compared with what came before; another target or other feature columns is another problem.
The prepared dataset records it in its metadata (`tunedag.data.save_prepared`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

if TYPE_CHECKING:
    from tunedag.data import Prepared

TAG_PROBLEM, TAG_TARGET, TAG_TASK, TAG_FEATURES = "tunedag.problem", "tunedag.target", "tunedag.task", "tunedag.features"
STUDY_ATTR = "tunedag.problem"  # the study user attr naming the problem its trials were scored on
_SHOWN_COLUMNS = 8  # columns a one-line description names before "..."


@dataclass(frozen=True)
class Problem:
    """What a model learns: `task` ("classification" / "regression"), `target`, and (name, kind) of each feature."""

    task: str
    target: str
    features: tuple[tuple[str, str], ...]  # sorted by name; kind "numeric" or "categorical"

    @property
    def id(self) -> str:
        """A short stable hash of task, target and feature schema (not of the rows)."""
        ident = {"task": self.task, "target": self.target, "features": [list(f) for f in sorted(self.features)]}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]

    def describe(self) -> str:
        """One line: `problem 3f2a... (classification of 'target' from 30 columns: a, b, ... )`."""
        names = [name for name, _ in self.features]
        shown = ", ".join(names[:_SHOWN_COLUMNS]) + (f", ... ({len(names)} in all)" if len(names) > _SHOWN_COLUMNS else "")
        return f"problem {self.id} ({self.task} of {self.target!r} from {len(names)} columns: {shown})"

    def to_dict(self) -> dict:
        return {"id": self.id, "task": self.task, "target": self.target, "features": [list(f) for f in self.features]}

    @classmethod
    def from_dict(cls, raw: dict) -> Problem:
        return cls(raw["task"], raw["target"], tuple(sorted((str(n), str(k)) for n, k in raw["features"])))


def problem_of(prep: Prepared) -> Problem:
    """The problem of a prepared dataset (its task, target, numeric and categorical columns)."""
    return problem_from(prep.task, prep.target, prep.numeric, prep.categorical)


def problem_from(
    task: str, target: str, numeric: tuple[str, ...] | list[str], categorical: tuple[str, ...] | list[str]
) -> Problem:
    """The problem from its parts, as the prepared dataset's metadata holds them."""
    features = [(str(c), "numeric") for c in numeric] + [(str(c), "categorical") for c in categorical]
    return Problem(task, str(target), tuple(sorted(features)))


def read_problem(path: Path) -> Problem | None:
    """The problem recorded in a prepared dataset's metadata (its footer only is read); None without a readable file."""
    try:
        meta = json.loads((pq.read_schema(path).metadata or {})[b"tunedag"])
    except (OSError, KeyError, ValueError):
        return None
    if "problem" in meta:
        return Problem.from_dict(meta["problem"])
    return problem_from(
        meta["task"], meta["target"], meta["numeric"], meta["categorical"]
    )  # prepared before problems were recorded


def problem_tags(problem: Problem | None) -> dict[str, str]:
    """Tags naming the problem on an MLflow run or model version: id, target, task, and the columns in short (none for None)."""
    if problem is None:
        return {}
    return {TAG_PROBLEM: problem.id, TAG_TARGET: problem.target, TAG_TASK: problem.task, TAG_FEATURES: problem.describe()}
