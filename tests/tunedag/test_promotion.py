"""Champion / challenger decisions (tunedag.promotion.decide)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tunedag.promotion import CHALLENGER, CHAMPION, decide, row_hashes, too_few_unseen, unseen_rows


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


def test_row_hashes_follow_content_not_position_index_or_number_type():
    rows = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "target": [0, 1, 0]})
    again = rows.iloc[::-1].set_index(pd.Index([7, 8, 9])).astype({"a": "float64"})[["target", "b", "a"]]

    assert sorted(row_hashes(rows)) == sorted(row_hashes(again))
    assert row_hashes(rows.assign(a=[1, 2, 4]))[2] != row_hashes(rows)[2]
    assert row_hashes(rows.assign(target=[0, 1, 1]))[2] != row_hashes(rows)[2]  # the target is part of a row


def test_unseen_rows_leave_out_rows_either_version_was_fitted_on():
    test = pd.DataFrame({"a": range(10), "target": [0, 1] * 5})
    first, second = row_hashes(test.iloc[:3]), row_hashes(test.iloc[2:5])

    assert unseen_rows(test, first, second).tolist() == [False] * 5 + [True] * 5
    assert unseen_rows(test).all()


@pytest.mark.parametrize(("unseen", "total", "enough"), [(30, 300, True), (29, 50, False), (40, 500, False), (50, 500, True)])
def test_too_few_unseen_rows_needs_30_and_a_tenth_of_the_test_split(unseen, total, enough):
    why = too_few_unseen(unseen, total)

    assert (why is None) == enough
    if not enough:
        assert f"only {unseen} of the {total} test rows were seen by neither version" in why
