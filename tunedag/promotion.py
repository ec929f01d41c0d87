"""Champion / challenger: whether a new model version takes the registry alias `champion`.

Both versions are scored only on test rows neither was fitted on: each version records the rows
it trained on as content hashes (`row_hashes`), since a new data version draws a new test split
whose rows may be rows the champion trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

CHAMPION, CHALLENGER = "champion", "challenger"
MIN_UNSEEN_ROWS, MIN_UNSEEN_SHARE = 30, 0.10  # fewer test rows neither version saw: no comparison, no move


def row_hashes(rows: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of its content (column names and values; not its index or position).

    Numbers hash as float64 and other values as text, so a row read again from a new file (an int
    column that became float, a category that became object) hashes the same.
    """
    ordered = rows[sorted(rows.columns, key=str)]
    normal = pd.DataFrame(
        {
            str(c): (
                ordered[c].astype("float64")
                if pd.api.types.is_numeric_dtype(ordered[c]) and not pd.api.types.is_bool_dtype(ordered[c])
                else ordered[c].astype(str)
            )
            for c in ordered.columns
        }
    )
    return pd.util.hash_pandas_object(normal, index=False).to_numpy(dtype=np.uint64)


def unseen_rows(test: pd.DataFrame, *seen: np.ndarray) -> np.ndarray:
    """Boolean mask of the `test` rows whose content is in none of the `seen` hash sets."""
    hashes = row_hashes(test)
    return ~np.isin(hashes, np.concatenate(seen)) if seen else np.ones(len(test), dtype=bool)


def too_few_unseen(unseen: int, total: int) -> str | None:
    """Why `unseen` of `total` test rows are too few to compare two versions on, or None when enough."""
    if unseen < MIN_UNSEEN_ROWS or unseen < MIN_UNSEEN_SHARE * total:
        return (
            f"only {unseen} of the {total} test rows were seen by neither version (at least {MIN_UNSEEN_ROWS} "
            f"and {MIN_UNSEEN_SHARE:.0%} are needed), too few to compare them fairly"
        )
    return None


@dataclass(frozen=True)
class Promotion:
    """The alias the new version gets, and why, in one line (logged on the run and the version)."""

    alias: Literal["champion", "challenger"]
    reason: str


def decide(
    metric: str,
    direction: str,
    new: tuple[str, float | None],
    champion: tuple[str, float | None] | None,
    champion_error: str | None = None,
    rows: str = "the same test split",
) -> Promotion:
    """Compare the new version with the champion on the same test rows.

    Args:
        metric: The metric compared (`tune.metric`), as `test_<metric>`.
        direction: "maximize" or "minimize".
        new: The new version and its test score (None: the metric could not be computed).
        champion: The champion's version and its score on the same rows; None when there is no champion.
        champion_error: Why the champion could not be scored on these rows (its features changed, say).
        rows: Which rows both were scored on, in words (e.g. "the 57 test rows neither was fitted on").

    Returns:
        `champion` only when the new score is strictly better, or when there is nothing to beat.
    """
    version, score = new
    if score is None or not math.isfinite(score):
        return Promotion(CHALLENGER, f"version {version} has no finite test_{metric}, so it cannot beat the champion")
    if champion is None:
        return Promotion(CHAMPION, f"version {version} is the first champion (test_{metric} {score:.6g})")
    if champion_error is not None:
        return Promotion(
            CHAMPION,
            f"version {version} (test_{metric} {score:.6g}) replaces champion version {champion[0]}, "
            f"which cannot score the current test split: {champion_error}",
        )
    old_version, old = champion
    if old is None or not math.isfinite(old):
        return Promotion(
            CHAMPION,
            f"version {version} (test_{metric} {score:.6g}) replaces champion version {old_version}, "
            "which scores no finite value on the current test split",
        )
    better = score > old if direction == "maximize" else score < old
    relation = "beats" if better else ("ties" if score == old else "does not beat")
    line = f"version {version} {relation} champion version {old_version} on {rows}: test_{metric} {score:.6g} vs {old:.6g}"
    return Promotion(CHAMPION if better else CHALLENGER, line + ("" if better else f" ({direction})"))
