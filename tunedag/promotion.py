"""Champion / challenger: whether a new model version takes the registry alias `champion`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Promotion:
    """The alias the new version gets, and why, in one line (logged on the run and the version)."""

    alias: Literal["champion", "challenger"]
    reason: str


def decide(metric: str, direction: str, new: tuple[str, float | None],
           champion: tuple[str, float | None] | None, champion_error: str | None = None) -> Promotion:
    """Compare the new version with the champion on the same test split.

    Args:
        metric: The metric compared (`tune.metric`), as `test_<metric>` on the current test split.
        direction: "maximize" or "minimize".
        new: The new version and its test score (None: the metric could not be computed).
        champion: The champion's version and its score on the same split; None when there is no champion.
        champion_error: Why the champion could not be scored on this split (its features changed, say).

    Returns:
        `champion` only when the new score is strictly better, or when there is nothing to beat.
    """
    version, score = new
    if score is None or not math.isfinite(score):
        return Promotion(CHALLENGER, f"version {version} has no finite test_{metric}, so it cannot beat the champion")
    if champion is None:
        return Promotion(CHAMPION, f"version {version} is the first champion (test_{metric} {score:.6g})")
    if champion_error is not None:
        return Promotion(CHAMPION, f"version {version} (test_{metric} {score:.6g}) replaces champion version {champion[0]}, "
                                   f"which cannot score the current test split: {champion_error}")
    old_version, old = champion
    if old is None or not math.isfinite(old):
        return Promotion(CHAMPION, f"version {version} (test_{metric} {score:.6g}) replaces champion version {old_version}, "
                                   "which scores no finite value on the current test split")
    better = score > old if direction == "maximize" else score < old
    relation = "beats" if better else ("ties" if score == old else "does not beat")
    line = f"version {version} {relation} champion version {old_version} on the same test split: test_{metric} {score:.6g} vs {old:.6g}"
    return Promotion(CHAMPION if better else CHALLENGER, line + ("" if better else f" ({direction})"))
