"""Column roles in `data:`: drop, id, keep; ID-like and constant columns left out with a warning; dates expanded."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.support.tables import churn_table
from tunedag.config import DataConfig
from tunedag.data import ColumnWarning, prepare
from tunedag.errors import DataError


def _prepare(frame, **data):
    cfg = DataConfig(source="file", path=Path("churn.csv"), target="churn", **data)
    return prepare(frame, "churn", cfg, 0, "churn.csv")


def test_an_id_column_and_a_constant_one_are_left_out_with_a_warning_and_dates_expanded():
    with pytest.warns(ColumnWarning) as caught:
        prep = _prepare(churn_table())
    messages = " ".join(str(w.message) for w in caught)
    assert "'customer_id' is not used as a feature: it is unique per row" in messages
    assert "'region' is not used as a feature: it holds a single value" in messages
    features = set(prep.numeric + prep.categorical)
    assert "customer_id" not in features and "region" not in features and "signup_date" not in features
    assert {"signup_date_year", "signup_date_month", "signup_date_weekday", "plan", "tenure", "monthly_fee"} <= features
    assert "customer_id" not in prep.xy("train")[0].columns


def test_listed_roles_win_over_the_guesses():
    frame = churn_table()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prep = _prepare(frame, id="customer_id", drop=["tenure"], keep=["region"])
    assert not [w for w in caught if "customer_id" in str(w.message)]  # named as the id: no warning
    assert "customer_id" in prep.frame.columns  # kept beside the rows, for joining predictions
    features = set(prep.numeric + prep.categorical)
    assert "customer_id" not in features and "tenure" not in features and "region" in features
    assert "tenure" not in prep.frame.columns


def test_a_role_naming_a_missing_column_is_refused_naming_the_key():
    with pytest.raises(DataError, match=r"data\.drop names \['nope'\]"):
        _prepare(churn_table(), drop=["nope"])
