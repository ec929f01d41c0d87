"""The problem identity of a dataset (tunedag.problem): task, target and feature schema, not rows."""

from __future__ import annotations

from tunedag.config import DataConfig
from tunedag.data import prepare, save_prepared
from tunedag.problem import TAG_PROBLEM, TAG_TARGET, TAG_TASK, problem_of, problem_tags, read_problem


def _problem(frame, target="label", **data):
    return problem_of(prepare(frame, target, DataConfig(source="file", path="x.csv", target=target, **data), 0, "x.csv"))


def test_new_rows_and_another_column_order_keep_the_problem(mixed_frame):
    first = _problem(mixed_frame.iloc[:120])
    more_rows = _problem(mixed_frame)
    reordered = _problem(mixed_frame[list(reversed(mixed_frame.columns))])

    assert first.id == more_rows.id == reordered.id and len(first.id) == 10
    assert first.features == (("color", "categorical"), ("count", "numeric"), ("flag", "categorical"), ("num", "numeric"))


def test_another_target_another_column_or_another_kind_is_another_problem(mixed_frame):
    base = _problem(mixed_frame)
    other_target = _problem(mixed_frame.assign(label2=mixed_frame["label"]).drop(columns="label"), target="label2")
    column_gone = _problem(mixed_frame.drop(columns="count"))
    column_added = _problem(mixed_frame.assign(extra=(mixed_frame.index % 7).astype(float)))  # a constant one is left out
    kind_changed = _problem(mixed_frame.assign(count=mixed_frame["count"].astype(str)))
    regression = _problem(mixed_frame.assign(label=range(len(mixed_frame))), task="regression")

    ids = {p.id for p in (base, other_target, column_gone, column_added, kind_changed, regression)}
    assert len(ids) == 6


def test_the_prepared_file_records_the_problem_and_tags_name_it(mixed_frame, tmp_path):
    prep = prepare(mixed_frame, "label", DataConfig(source="file", path="x.csv", target="label"), 0, "x.csv")
    save_prepared(prep, tmp_path / "prepared.parquet")

    recorded = read_problem(tmp_path / "prepared.parquet")

    assert recorded == problem_of(prep)
    tags = problem_tags(recorded)
    assert tags[TAG_PROBLEM] == recorded.id and tags[TAG_TARGET] == "label" and tags[TAG_TASK] == "classification"
    assert read_problem(tmp_path / "missing.parquet") is None


def test_the_description_names_target_task_and_columns_in_short(mixed_frame):
    wide = mixed_frame.assign(**{f"w{i:02d}": (mixed_frame.index % (i + 2)).astype(float) for i in range(20)})

    text = _problem(wide).describe()

    assert text.startswith(
        f"problem {_problem(wide).id} (classification of 'label' from 24 columns: color, count, flag, num, w00"
    )
    assert text.endswith("... (24 in all))")
