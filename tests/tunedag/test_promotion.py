"""Champion / challenger decisions (tunedag.promotion.decide)."""

from __future__ import annotations

import math

import pytest

from tunedag.promotion import CHALLENGER, CHAMPION, decide


@pytest.mark.parametrize(
    ("direction", "new", "old", "alias", "words"),
    [
        ("maximize", 0.95, 0.90, CHAMPION, "beats champion version 1"),
        ("maximize", 0.90, 0.95, CHALLENGER, "does not beat"),
        ("maximize", 0.90, 0.90, CHALLENGER, "ties"),
        ("minimize", 0.10, 0.20, CHAMPION, "beats"),
        ("minimize", 0.30, 0.20, CHALLENGER, "does not beat"),
    ],
)
def test_the_champion_moves_only_to_a_strictly_better_score(direction, new, old, alias, words):
    decision = decide("roc_auc", direction, ("2", new), ("1", old))

    assert decision.alias == alias and words in decision.reason
    assert f"{new:.6g} vs {old:.6g}" in decision.reason and "same test split" in decision.reason


def test_the_first_version_is_champion():
    decision = decide("rmse", "minimize", ("1", 3.2), None)

    assert decision.alias == CHAMPION and "first champion" in decision.reason


@pytest.mark.parametrize("score", [None, math.nan])
def test_a_version_without_a_score_is_only_a_challenger(score):
    assert decide("roc_auc", "maximize", ("2", score), ("1", 0.5)).alias == CHALLENGER


def test_a_champion_that_cannot_score_the_current_split_is_replaced_with_the_reason():
    decision = decide("roc_auc", "maximize", ("3", 0.9), ("2", None), "ValueError: columns are missing: ['x7']")

    assert decision.alias == CHAMPION and "cannot score the current test split" in decision.reason and "x7" in decision.reason
