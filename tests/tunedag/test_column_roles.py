"""Column roles in `data:`: drop, id, keep, group, time, weight; ID-like and constant columns left out with a warning; dates expanded."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn import metrics as skm

from tests.support.tables import churn_table
from tunedag import objective
from tunedag.config import DataConfig
from tunedag.data import SPLIT, ColumnWarning, load_prepared, prepare, save_prepared
from tunedag.errors import ConfigError, DataError


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


# --- group, time and weight -------------------------------------------------------------------------

RF = {"n_estimators": 10, "max_depth": 4, "min_samples_leaf": 2, "max_features": "sqrt", "criterion": "gini"}


def _roles_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """The churn table plus a `store` (30 groups), a shuffled `day` and a `w` weight column."""
    rng = np.random.default_rng(seed)
    frame = churn_table(n, seed=seed).drop(columns=["customer_id", "region", "signup_date"])
    frame["store"] = [f"s{i}" for i in rng.integers(0, 30, n)]
    frame["day"] = (pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.permutation(n), unit="D")).strftime("%Y-%m-%d")
    frame["w"] = rng.uniform(0.5, 2.0, n)
    return frame


def _roles_prepared(frame=None, **data):
    cfg = DataConfig(source="file", path=Path("churn.csv"), target="churn", **data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ColumnWarning)
        return prepare(_roles_table() if frame is None else frame, "churn", cfg, 0, "churn.csv")


def _record_folds(monkeypatch):
    """Capture the frame index of the rows each fit trains on and each score validates on, during evaluate."""
    fits, scores = [], []
    real_fit, real_score = objective.fit_weighted, objective.score

    def recording_fit(model, X, y, weight=None, **kw):
        fits.append((list(X.index), weight))
        return real_fit(model, X, y, weight, **kw)

    def recording_score(model, X, y, names, sample_weight=None):
        scores.append((list(X.index), sample_weight))
        return real_score(model, X, y, names, sample_weight)

    monkeypatch.setattr(objective, "fit_weighted", recording_fit)
    monkeypatch.setattr(objective, "score", recording_score)
    return fits, scores


def test_a_group_stays_on_one_side_of_the_split_and_of_every_cv_fold(make_config, monkeypatch):
    prep = _roles_prepared(group="store", cv_folds=3, val_size=0)
    sides = prep.frame.groupby("store")[SPLIT].nunique()
    assert (sides == 1).all() and set(prep.frame[SPLIT]) == {"train", "test"}
    assert "store" not in prep.xy("train")[0].columns and "store" in prep.frame.columns
    cfg = make_config({"data.cv_folds": 3, "data.val_size": 0})
    fits, scores = _record_folds(monkeypatch)
    objective.evaluate(cfg, prep, RF)
    assert len(scores) == 3 and len(fits) == 4  # three folds, then the refit on every non-test row
    store = prep.frame["store"]
    for (train_rows, _), (val_rows, _) in zip(fits, scores):
        assert not set(store[train_rows]) & set(store[val_rows])
        assert not set(train_rows) & set(val_rows)
    assert sorted(r for rows, _ in scores for r in rows) == sorted(prep.frame.index[prep.frame[SPLIT] != "test"])


def test_a_group_split_with_validation_keeps_groups_apart_across_all_three():
    prep = _roles_prepared(group="store", val_size=0.2, cv_folds=0)
    assert (prep.frame.groupby("store")[SPLIT].nunique() == 1).all()
    assert set(prep.frame[SPLIT]) == {"train", "val", "test"}
    shares = prep.frame[SPLIT].value_counts(normalize=True)
    assert 0.1 < shares["test"] < 0.3 and 0.1 < shares["val"] < 0.3


def test_a_time_column_orders_the_split_and_the_folds_look_only_forward(make_config, monkeypatch):
    prep = _roles_prepared(time="day", cv_folds=3, val_size=0)
    day, split = prep.frame["day"], prep.frame[SPLIT]
    assert day[split == "test"].min() >= day[split == "train"].max()
    assert "day" not in prep.numeric + prep.categorical and not [c for c in prep.numeric if c.startswith("day_")]
    cfg = make_config({"data.cv_folds": 3, "data.val_size": 0})
    fits, scores = _record_folds(monkeypatch)
    objective.evaluate(cfg, prep, RF)
    assert len(scores) == 3
    for (train_rows, _), (val_rows, _) in zip(fits, scores):
        assert day[train_rows].max() <= day[val_rows].min()


def test_time_split_with_validation_puts_val_between_train_and_test():
    prep = _roles_prepared(time="day", val_size=0.2, cv_folds=0)
    day, split = prep.frame["day"], prep.frame[SPLIT]
    assert day[split == "train"].max() <= day[split == "val"].min() <= day[split == "val"].max() <= day[split == "test"].min()


def test_weights_reach_fit_and_metrics_as_sklearns_sample_weight(make_config):
    frame = _roles_table()
    frame.loc[frame["plan"] == "basic", "w"] = 0.0  # a third of the rows weigh nothing
    prep = _roles_prepared(frame, weight="w", cv_folds=0, val_size=0.2)
    assert "w" not in prep.xy("train")[0].columns
    cfg = make_config({"data.cv_folds": 0, "data.val_size": 0.2})
    outcome = objective.evaluate(cfg, prep, RF)
    X, y = prep.xy("train")
    X_val, y_val = prep.xy("val")
    w, w_val = prep.weights("train"), prep.weights("val")
    by_hand = objective.make_model(cfg, prep, RF).fit(X, y, model__sample_weight=w)
    unweighted = objective.make_model(cfg, prep, RF).fit(X, y)
    proba = outcome.model.predict_proba(X_val)
    np.testing.assert_array_equal(proba, by_hand.predict_proba(X_val))
    assert not np.array_equal(proba, unweighted.predict_proba(X_val))
    assert outcome.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y_val, proba[:, 1], sample_weight=w_val))
    assert outcome.metrics["roc_auc"] != pytest.approx(skm.roc_auc_score(y_val, proba[:, 1]))


def test_weights_are_split_with_the_cv_folds(make_config, monkeypatch):
    prep = _roles_prepared(weight="w", cv_folds=3, val_size=0)
    fits, scores = _record_folds(monkeypatch)
    objective.evaluate(make_config({"data.cv_folds": 3, "data.val_size": 0}), prep, RF)
    weight = prep.frame["w"]
    for rows, passed in fits + scores:
        np.testing.assert_array_equal(passed, weight[rows].to_numpy())


def test_roles_travel_in_the_prepared_file(tmp_path):
    prep = _roles_prepared(group="store", weight="w", id="plan")
    save_prepared(prep, tmp_path / "p.parquet")
    back = load_prepared(tmp_path / "p.parquet", "v1")
    assert (back.group, back.time, back.weight) == ("store", None, "w")
    np.testing.assert_array_equal(back.weights("test"), prep.weights("test"))
    np.testing.assert_array_equal(back.groups("train"), prep.groups("train"))
    assert list(back.xy("train")[0].columns) == list(prep.numeric + prep.categorical)
    assert not {"store", "w", "plan"} & set(back.xy("train")[0].columns)


@pytest.mark.parametrize(
    ("data", "frame_change", "message"),
    [
        ({"group": "shop"}, None, r"data\.group names 'shop', which is not a column"),
        ({"weight": "w"}, lambda f: f.assign(w=-f["w"]), r"data\.weight column 'w' .* non-negative"),
        ({"weight": "plan"}, None, r"data\.weight column 'plan' .* numbers"),
        ({"time": "plan"}, None, r"data\.time column 'plan' .* cannot be ordered"),
        ({"group": "store"}, lambda f: f.assign(store="one"), r"data\.group column 'store' .* 1 distinct groups"),
    ],
    ids=["missing-group", "negative-weight", "text-weight", "unordered-time", "one-group"],
)
def test_a_bad_role_column_is_refused_naming_the_key(data, frame_change, message):
    frame = _roles_table()
    with pytest.raises(DataError, match=message):
        _roles_prepared(frame_change(frame) if frame_change else frame, **data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"group": "store", "weight": "store"}, "column 'store' is named by both group and weight"),
        ({"time": "churn"}, "column 'churn' is named by both target and time"),
        ({"group": "store", "time": "day"}, "group .* and time .* cannot be set together"),
    ],
)
def test_conflicting_roles_are_refused_naming_both_keys(data, message):
    with pytest.raises(ValidationError, match=message):
        DataConfig(source="file", path=Path("churn.csv"), target="churn", **data)


def test_too_few_groups_for_the_folds_is_refused(make_config):
    frame = _roles_table().assign(store=lambda f: np.array(["a", "b", "c"])[np.arange(len(f)) % 3])  # three groups
    with pytest.raises(
        DataError, match=r"data\.group column 'store' .* leaves 2 groups outside the test split, fewer than data\.cv_folds \(3\)"
    ):
        _roles_prepared(frame, group="store", cv_folds=3, val_size=0)
    prep = _roles_prepared(frame, group="store", cv_folds=2, val_size=0)  # prepared for 2 folds, then tuned with 3
    with pytest.raises(DataError, match=r"data\.group column 'store' has 2 groups .* fewer than data\.cv_folds \(3\)"):
        objective.evaluate(make_config({"data.cv_folds": 3, "data.val_size": 0}), prep, RF)


def test_a_weight_with_an_estimator_whose_fit_lacks_sample_weight_is_refused(make_config):
    cfg = make_config(
        {
            "data.weight": "w",
            "model.estimator": "sklearn.neighbors.KNeighborsClassifier",
            "model.fixed": {},
            "search_space": {"n_neighbors": {"type": "int", "low": 1, "high": 20}},
        }
    )
    with pytest.raises(
        ConfigError, match=r"data\.weight \('w'\) needs estimators whose fit takes sample_weight, but model\.estimator"
    ):
        objective.check_weight_support(cfg)
    objective.check_weight_support(make_config({"data.weight": "w"}))  # a random forest takes it


def test_under_time_the_threshold_is_tuned_on_forward_folds_and_under_weight_not_at_all(make_config):
    from sklearn.model_selection import TimeSeriesSplit

    from tunedag.metrics import decision_threshold

    cfg = make_config({"tune.metric": "f1", "data.cv_folds": 0, "data.val_size": 0.2})
    timed = objective.evaluate(cfg, _roles_prepared(time="day", cv_folds=0, val_size=0.2), RF).model
    assert isinstance(timed.steps[-1][1].cv, TimeSeriesSplit) and decision_threshold(timed) is not None
    weighted = objective.evaluate(cfg, _roles_prepared(weight="w", cv_folds=0, val_size=0.2), RF).model
    assert decision_threshold(weighted) is None


def test_the_tune_stage_check_refuses_too_few_groups_before_any_trial(make_config):
    frame = _roles_table().assign(store=lambda f: np.array(["a", "b", "c"])[np.arange(len(f)) % 3])
    prep = _roles_prepared(frame, group="store", cv_folds=2, val_size=0)
    objective.check_roles(make_config({"data.cv_folds": 2, "data.val_size": 0}), prep)  # two groups, two folds: fine
    with pytest.raises(DataError, match=r"data\.group column 'store' has 2 groups"):
        objective.check_roles(make_config({"data.cv_folds": 3, "data.val_size": 0}), prep)
