"""Data sources, task inference, the seeded stratified split and the prepared file (tunedag.data)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tunedag.config import DataConfig
from tunedag.data import SPLIT, Prepared, file_md5, infer_task, load_prepared, load_source, prepare, save_prepared
from tunedag.errors import DataError
from tunedag.shared_table import cache_path

SKLEARN_DATASETS = [
    # name, task, rows, classes (None for regression)
    ("iris", "classification", 150, 3),
    ("wine", "classification", 178, 3),
    ("breast_cancer", "classification", 569, 2),
    ("digits", "classification", 1797, 10),
    ("diabetes", "regression", 442, None),
]
CLASSIFICATION = [name for name, task, *_ in SKLEARN_DATASETS if task == "classification"]


def split_sizes(prep: Prepared) -> dict[str, int]:
    return prep.frame[SPLIT].value_counts().to_dict()


def prepare_file(cfg: DataConfig, seed: int = 0) -> Prepared:
    """What the prepare stage does for a file source: read, then check and split."""
    frame, target = load_source(cfg, seed)
    return prepare(frame, target, cfg, seed, str(cfg.path))


# --- scikit-learn sources: one contract for every bundled dataset ------------------------


@pytest.mark.parametrize(("name", "task", "rows", "classes"), SKLEARN_DATASETS)
def test_sklearn_dataset_loads_and_prepares(prepare_sklearn, name, task, rows, classes) -> None:
    prep = prepare_sklearn(name)

    assert prep.task == task
    assert prep.target == "target"
    assert len(prep.frame) == rows
    assert prep.categorical == ()
    assert set(prep.numeric) == set(prep.frame.columns) - {"target", SPLIT}
    assert set(prep.frame[SPLIT]) == {"train", "val", "test"}
    if classes is not None:
        assert prep.frame["target"].nunique() == classes
    else:
        assert prep.frame["target"].dtype == float


@pytest.mark.parametrize(("name", "task", "rows", "classes"), SKLEARN_DATASETS)
@pytest.mark.parametrize(("test_size", "val_size"), [(0.2, 0.2), (0.1, 0.3), (0.3, 0.1)])
def test_split_sizes_follow_the_config(prepare_sklearn, name, task, rows, classes, test_size, val_size) -> None:
    sizes = split_sizes(prepare_sklearn(name, test_size=test_size, val_size=val_size))

    assert sum(sizes.values()) == rows
    assert sizes["test"] / rows == pytest.approx(test_size, abs=0.02)
    assert sizes["val"] / rows == pytest.approx(val_size, abs=0.02)
    assert sizes["train"] / rows == pytest.approx(1 - test_size - val_size, abs=0.02)


@pytest.mark.parametrize("name", ["iris", "diabetes"])
def test_splits_are_disjoint_and_cover_every_row(prepare_sklearn, name: str) -> None:
    prep = prepare_sklearn(name)
    index = {split: set(prep.xy(split)[0].index) for split in ("train", "val", "test")}

    assert not index["train"] & index["val"]
    assert not index["train"] & index["test"]
    assert not index["val"] & index["test"]
    assert index["train"] | index["val"] | index["test"] == set(prep.frame.index)
    X, y = prep.xy("train", "val")
    assert len(X) == len(y) == len(index["train"]) + len(index["val"])
    assert SPLIT not in X.columns and prep.target not in X.columns


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_split_is_stratified(prepare_sklearn, name: str) -> None:
    prep = prepare_sklearn(name)
    overall = prep.frame["target"].value_counts(normalize=True)

    for split in ("train", "val", "test"):
        _, y = prep.xy(split)
        share = y.value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert (share - overall).abs().max() < 0.03, split


@pytest.mark.parametrize("name", ["breast_cancer", "diabetes"])
def test_split_is_seeded(prepare_sklearn, name: str) -> None:
    first = prepare_sklearn(name, seed=1).frame[SPLIT]
    again = prepare_sklearn(name, seed=1).frame[SPLIT]
    other = prepare_sklearn(name, seed=2).frame[SPLIT]

    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_cross_validation_has_no_validation_split(prepare_sklearn) -> None:
    sizes = split_sizes(prepare_sklearn("breast_cancer", val_size=0, cv_folds=3))
    assert set(sizes) == {"train", "test"}
    assert sizes["test"] / 569 == pytest.approx(0.2, abs=0.01)


# --- synthetic sources --------------------------------------------------------------------


@pytest.mark.parametrize(("task", "n_classes"), [("classification", 2), ("classification", 3), ("regression", 2)])
def test_synthetic_data_prepares_with_the_configured_task(task: str, n_classes: int) -> None:
    cfg = DataConfig(
        source="synthetic", task=task, synthetic={"n_samples": 200, "n_features": 6, "n_informative": 4, "n_classes": n_classes}
    )
    frame, target = load_source(cfg, seed=3)
    prep = prepare(frame, target, cfg, 3, "synthetic")

    assert prep.task == task
    assert len(prep.frame) == 200
    assert prep.numeric == tuple(f"x{i}" for i in range(6))
    if task == "classification":
        assert prep.frame[target].nunique() == n_classes
    else:
        assert prep.frame[target].nunique() > 100
    frame_again, _ = load_source(cfg, seed=3)
    pd.testing.assert_frame_equal(frame, frame_again)


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b", "a"], "classification"),
        ([True, False, True], "classification"),
        ([0, 1, 2, 1], "classification"),
        ([0.0, 1.0, 1.0], "classification"),
        (list(range(50)), "regression"),
        ([0.5, 1.25, 3.0], "regression"),
    ],
    ids=["text", "bool", "small-int", "whole-floats", "many-ints", "floats"],
)
def test_infer_task(values: list, task: str) -> None:
    assert infer_task(pd.Series(values)) == task


# --- your own file: CSV with categories and missing values --------------------------------


def test_csv_with_categories_and_missing_values_prepares(mixed_csv: Path) -> None:
    prep = prepare_file(DataConfig(source="file", path=mixed_csv, target="label"))

    assert prep.task == "classification"
    assert prep.numeric == ("num", "count")
    assert prep.categorical == ("color", "flag")
    assert prep.frame["num"].isna().sum() > 0
    assert prep.frame["color"].isna().sum() > 0
    assert set(prep.frame["color"].dropna()) == {"red", "green", "blue"}
    assert set(prep.frame["label"]) == {"yes", "no"}
    X, _ = prep.xy("train")
    assert list(X.columns) == ["num", "count", "color", "flag"]


def test_parquet_file_reads_like_csv(tmp_path: Path, mixed_frame: pd.DataFrame) -> None:
    path = tmp_path / "mixed.parquet"
    mixed_frame.to_parquet(path)
    prep = prepare_file(DataConfig(source="file", path=path, target="label"))
    assert prep.categorical == ("color", "flag") and prep.numeric == ("num", "count")
    assert len(prep.frame) == len(mixed_frame)


def test_prepared_file_round_trips(tmp_path: Path, mixed_csv: Path) -> None:
    prep = prepare_file(DataConfig(source="file", path=mixed_csv, target="label"))
    path = tmp_path / "prepared" / "dataset.parquet"

    save_prepared(prep, path, {"source": str(mixed_csv)})
    loaded = load_prepared(path, file_md5(path))

    pd.testing.assert_frame_equal(loaded.frame, prep.frame)
    assert (loaded.target, loaded.task, loaded.numeric, loaded.categorical) == (
        prep.target,
        prep.task,
        prep.numeric,
        prep.categorical,
    )
    meta = json.loads(pq.read_schema(path).metadata[b"tunedag"])
    assert meta["source"] == str(mixed_csv)
    assert sorted(p.name for p in path.parent.iterdir()) == [cache_path(path).name, "dataset.parquet"]  # no temporary file left


def test_sklearn_prepared_file_round_trips(tmp_path: Path, prepare_sklearn) -> None:
    prep = prepare_sklearn("wine")
    path = tmp_path / "dataset.parquet"
    save_prepared(prep, path)
    loaded = load_prepared(path, "v1")
    pd.testing.assert_frame_equal(loaded.frame, prep.frame)
    for split in ("train", "val", "test"):
        pd.testing.assert_frame_equal(loaded.xy(split)[0], prep.xy(split)[0])


def test_same_data_same_seed_same_file_hash(tmp_path: Path, prepare_sklearn) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    save_prepared(prepare_sklearn("iris", seed=5), a)
    save_prepared(prepare_sklearn("iris", seed=5), b)
    assert file_md5(a) == file_md5(b)


@pytest.mark.parametrize("size", [0, 10, 3 * (1 << 20) + 7])
def test_file_md5_is_the_md5_of_the_bytes(tmp_path: Path, size: int) -> None:
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(0).bytes(size)
    path.write_bytes(data)
    assert file_md5(path) == hashlib.md5(data).hexdigest()


# --- bad data: each refused with the file or column named ---------------------------------


def _write_csv(frame: pd.DataFrame) -> Callable[[Path], Path]:
    def write(tmp_path: Path) -> Path:
        path = tmp_path / "data.csv"
        frame.to_csv(path, index=False)
        return path

    return write


def _write_bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def write(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


def _labels(*labels: str, n: int = 30) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype=float), "y": [labels[i % len(labels)] for i in range(n)]})


_one_rare = pd.DataFrame({"x": np.arange(31.0), "y": ["a"] * 15 + ["b"] * 15 + ["c"]})

BAD_FILES = [
    # (writes the file, target column, task, words the DataError must hold besides the file name)
    pytest.param(lambda tmp: tmp / "missing.csv", "y", "auto", ["does not exist", "data.path"], id="missing-file"),
    pytest.param(_write_bytes("empty.csv", b""), "y", "auto", ["empty"], id="empty-csv"),
    pytest.param(_write_bytes("empty.parquet", b""), "y", "auto", ["cannot be read"], id="empty-parquet"),
    pytest.param(
        _write_bytes("broken.parquet", np.random.default_rng(1).bytes(4096)),
        "y",
        "auto",
        ["cannot be read"],
        id="corrupted-parquet",
    ),
    pytest.param(_write_csv(_labels("a", "b")), "label", "auto", ["'label'", "data.target", "x, y"], id="missing-target-column"),
    pytest.param(_write_csv(_labels("a")), "y", "auto", ["'y'", "single class"], id="single-class"),
    pytest.param(_write_csv(_one_rare), "y", "auto", ["'y'", "'c'"], id="class-with-one-row"),
    pytest.param(_write_csv(_labels("low", "high")), "y", "regression", ["'y'", "numeric"], id="text-target-for-regression"),
    pytest.param(_write_csv(_labels("a", "b", n=8)), "y", "auto", ["8 rows"], id="too-few-rows"),
    pytest.param(_write_csv(pd.DataFrame({"y": ["a", "b"] * 10})), "y", "auto", ["0 feature"], id="no-features"),
    pytest.param(_write_bytes("header.csv", b"x,y\n"), "y", "auto", ["0 rows"], id="header-only-csv"),
    pytest.param(
        _write_csv(pd.DataFrame({"x": np.arange(30.0), "y": [np.nan] * 30})),
        "y",
        "auto",
        ["0 rows with a target"],
        id="target-all-missing",
    ),
    pytest.param(
        _write_csv(pd.DataFrame({"x": np.arange(30.0), "y": [1.5] * 29 + [np.inf]})),
        "y",
        "regression",
        ["'y'", "infinite"],
        id="infinite-regression-target",
    ),
    pytest.param(
        _write_csv(pd.DataFrame({"x": [1.0] * 29 + [-np.inf], "z": np.arange(30.0), "y": ["a", "b"] * 15})),
        "y",
        "auto",
        ["['x']", "infinite"],
        id="infinite-feature",
    ),
]


@pytest.mark.parametrize(("write", "target", "task", "words"), BAD_FILES)
def test_bad_data_is_refused_naming_file_or_column(tmp_path: Path, write, target, task, words) -> None:
    path = write(tmp_path)
    cfg = DataConfig(source="file", path=path, target=target, task=task)

    with pytest.raises(DataError) as info:
        prepare_file(cfg)

    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message
    assert "\n" not in message


def test_load_prepared_of_a_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "prepared" / "dataset.parquet"
    with pytest.raises(DataError, match="paths.prepared") as info:
        load_prepared(path, "v1")
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "write",
    [
        lambda path: path.write_bytes(np.random.default_rng(2).bytes(2048)),
        lambda path: pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(path),  # a Parquet file tunedag did not write
    ],
    ids=["random-bytes", "foreign-parquet"],
)
def test_load_prepared_refuses_a_file_it_did_not_write(tmp_path: Path, write) -> None:
    path = tmp_path / "dataset.parquet"
    write(path)
    with pytest.raises(DataError, match="not made by tunedag") as info:
        load_prepared(path, "v1")
    assert str(path) in str(info.value)
