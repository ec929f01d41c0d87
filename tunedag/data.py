"""Data sources, task inference, the seeded split, and the prepared dataset file.

The prepared dataset is one Parquet file with a `__split__` column (train / val / test)
and its metadata (target, task, column kinds) in the file's schema metadata, so its DVC
hash (the file's MD5) is the data version recorded on every MLflow run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn import datasets as skd
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

from tunedag.config import DataConfig
from tunedag.errors import DataError
from tunedag.problem import problem_of
from tunedag.shared_table import read_shared

SPLIT = "__split__"
_META_KEY = b"tunedag"
_MAX_CLASSES_FOR_INT_TARGET = 20


@dataclass(frozen=True)
class Prepared:
    """The split dataset and what the model pipeline needs to know about its columns."""

    frame: pd.DataFrame
    target: str
    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    # Column roles (data.group / data.time / data.weight): kept in the frame, never features. Under `time` the
    # frame's rows are in time order, so the rows of any split come out oldest first.
    group: str | None = None
    time: str | None = None
    weight: str | None = None

    def xy(self, *splits: str) -> tuple[pd.DataFrame, pd.Series]:
        """Features and target of the rows in `splits` (e.g. "train", "val")."""
        rows = self.frame[self.frame[SPLIT].isin(splits)]
        return rows[list(self.numeric + self.categorical)], rows[self.target]

    def groups(self, *splits: str) -> np.ndarray | None:
        """The `data.group` value of each row in `splits` (aligned with `xy`), or None without a group column."""
        return None if self.group is None else self.frame.loc[self.frame[SPLIT].isin(splits), self.group].to_numpy()

    def weights(self, *splits: str) -> np.ndarray | None:
        """The `data.weight` of each row in `splits` (aligned with `xy`), or None without a weight column."""
        return None if self.weight is None else self.frame.loc[self.frame[SPLIT].isin(splits), self.weight].to_numpy(float)

    @property
    def roles(self) -> dict[str, str]:
        """The role columns set, by role name: what the prepared file's metadata records."""
        return {k: v for k, v in (("group", self.group), ("time", self.time), ("weight", self.weight)) if v is not None}


def roles_of(meta: dict) -> dict[str, str]:
    """The role columns recorded in a prepared file's metadata (none in a file written before roles existed)."""
    return {k: meta[k] for k in ("group", "time", "weight") if meta.get(k) is not None}


def load_source(cfg: DataConfig, seed: int) -> tuple[pd.DataFrame, str]:
    """Read the configured source into a frame; return it with the target column name."""
    if cfg.source == "sklearn":
        bunch = getattr(skd, f"load_{cfg.name}")(as_frame=True)
        return bunch.frame, "target"
    if cfg.source == "synthetic":
        return _synthetic(cfg, seed), "target"
    if cfg.source == "npz":
        return read_npz(cfg.path), "target"
    return _read_file(cfg.path), cfg.target


def check_data_path(cfg: DataConfig) -> None:
    """The cheap checks of a file source, run by the command before its flow: what data.path is, and a CSV's header."""
    if cfg.source in ("file", "npz") and cfg.path is not None:
        _check_readable(cfg.path)
        if cfg.path.suffix.lower() == ".csv" and cfg.path.is_file():
            _check_header(cfg.path)


def _check_readable(path: Path) -> None:
    """Refuse a data.path that is not a regular file, saying what it is (a FIFO would block, /dev/zero never ends)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing or a dangling link: the caller says "does not exist"
    if stat.S_ISREG(mode):
        return
    kinds = {
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO (named pipe)",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISSOCK: "a socket",
    }
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    link = f" a symbolic link to {os.readlink(path)}, which is" if path.is_symlink() else ""
    raise DataError(
        f"Data file {path} (data.path) is{link} {kind}, not a regular file; it was not read. Point data.path at a CSV or Parquet file."
    )


def _check_header(path: Path) -> None:
    """Refuse repeated column names in a CSV header (pandas would rename the second `y` to `y.1`, a feature)."""
    header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    repeated = sorted({str(c) for c in header if header.count(c) > 1})
    if repeated:
        raise DataError(
            f"Data file {path} (data.path) repeats column names {repeated} in its header; each column needs its own name."
        )


def read_npz(path: Path) -> pd.DataFrame:
    """Images from a .npz file (arrays X: (N, H, W) or (N, C, H, W), or (N, F) features; y: (N,)) as one
    column per value, named px0, px1, ... in C-order (channel, row, column), plus `target`.

    Set the CNN's `image_shape` ([C, H, W]) in model.fixed; the network reshapes the columns back.
    """
    if not path.is_file():
        raise DataError(f"Data file {path} (data.path) does not exist. Put your .npz file there or fix data.path.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("X", "y") if k in npz.files}
            names = npz.files
    except (ValueError, OSError) as exc:
        raise DataError(
            f"Data file {path} (data.path) is not a readable .npz archive of plain arrays: {' '.join(str(exc).split())}"
        ) from None
    if set(arrays) != {"X", "y"}:
        raise DataError(f"Data file {path} (data.path) must hold arrays named X and y; it holds {', '.join(names) or 'none'}.")
    X, y = arrays["X"], arrays["y"]
    if X.ndim not in (2, 3, 4) or y.ndim != 1 or len(X) != len(y) or not np.issubdtype(X.dtype, np.number):
        raise DataError(
            f"Data file {path} (data.path): X must be a numeric (N, H, W), (N, C, H, W) or (N, F) array and y "
            f"an (N,) array; got X {X.dtype} {X.shape} and y {y.shape}."
        )
    flat = X.reshape(len(X), -1).astype(np.float64)  # the dtype a saved torch model's signature takes
    frame = pd.DataFrame(flat, columns=[f"px{i}" for i in range(flat.shape[1])])
    frame["target"] = y
    return frame


def _synthetic(cfg: DataConfig, seed: int) -> pd.DataFrame:
    s = cfg.synthetic
    if cfg.task == "classification":
        X, y = skd.make_classification(
            n_samples=s.n_samples,
            n_features=s.n_features,
            n_informative=s.n_informative,
            n_redundant=0,
            n_classes=s.n_classes,
            random_state=seed,
        )
    else:
        X, y = skd.make_regression(
            n_samples=s.n_samples,
            n_features=s.n_features,
            n_informative=s.n_informative,
            noise=s.noise,
            random_state=seed,
        )
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["target"] = y
    return frame


def _read_file(path: Path) -> pd.DataFrame:
    _check_readable(path)
    if not path.is_file():
        raise DataError(f"Data file {path} (data.path) does not exist. Put your CSV or Parquet file there or fix data.path.")
    try:
        if path.suffix.lower() == ".csv":
            _check_header(path)
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"Data file {path} (data.path) is empty.") from None
    except (ValueError, OSError, pa.ArrowException, pd.errors.ParserError) as exc:
        raise DataError(f"Data file {path} (data.path) cannot be read: {' '.join(str(exc).split())}") from None


def prepare(frame: pd.DataFrame, target: str, cfg: DataConfig, seed: int, source_name: str) -> Prepared:
    """Check the frame, infer the task, and split it into train / val / test, seeded."""
    if target not in frame.columns:
        raise DataError(
            f"Target column {target!r} (data.target) is not in {source_name}; its columns are: {', '.join(map(str, frame.columns[:30]))}."
        )
    _check_names(frame, target, source_name)
    frame = _check_numbers(frame, [c for c in frame.columns if c != target], cfg.on_bad_numbers, source_name)
    frame = frame.dropna(subset=[target]).reset_index(drop=True)
    frame = _check_role_columns(frame, target, cfg, source_name)
    frame, features = column_roles(frame, target, cfg, source_name)
    if len(frame) < 10 or not features:
        raise DataError(
            f"{source_name} has {len(frame)} rows with a target and {len(features)} feature columns; at least 10 rows and 1 feature are needed."
        )
    task = cfg.task if cfg.task != "auto" else infer_task(frame[target])
    frame[target] = _check_target(frame[target], task, source_name, target)
    numeric, categorical = _column_kinds(frame[features])
    infinite = [c for c, bad in zip(numeric, np.isinf(frame[numeric].to_numpy(dtype=float)).any(axis=0)) if bad]
    if infinite:
        raise DataError(
            f"Feature columns {infinite} in {source_name} hold infinite values; replace them with numbers, "
            "or leave the cells empty to be imputed."
        )
    frame = _normalise_categoricals(frame, categorical)
    if cfg.group is not None:
        frame[SPLIT] = _assign_group_splits(frame[target], frame[cfg.group], task, cfg, seed, source_name)
    elif cfg.time is not None:
        frame[SPLIT] = _assign_time_splits(len(frame), cfg, source_name)
    else:
        frame[SPLIT] = _assign_splits(frame[target], task, cfg, seed, source_name)
    return Prepared(frame, target, task, tuple(numeric), tuple(categorical), cfg.group, cfg.time, cfg.weight)


def _check_names(frame: pd.DataFrame, target: str, source_name: str) -> None:
    """Refuse repeated column names and a column named like the one tunedag adds (SPLIT)."""
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise DataError(
            f"{source_name} repeats column names {repeated}; each column needs its own name (data.target {target!r})."
        )
    if SPLIT in frame.columns:
        role = "the target (data.target)" if target == SPLIT else "a column"
        raise DataError(
            f"{source_name} has {role} named {SPLIT!r}, the column tunedag adds for the train / val / test split; rename it."
        )


_MOSTLY = 0.9  # a text column whose non-empty values are at least this share numbers is a numeric column with typos


def _check_numbers(frame: pd.DataFrame, features: list, on_bad: str, source_name: str) -> pd.DataFrame:
    """Refuse (or with on_bad 'coerce', blank with a warning) the few non-numbers of a mostly numeric text column.

    Otherwise one stray string turns a numeric column into a categorical one with a level per value.
    """
    for col in features:
        if pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
            continue
        numbers = pd.to_numeric(frame[col], errors="coerce")
        bad = frame[col].notna() & numbers.isna()
        filled = int(frame[col].notna().sum())
        if not bad.any() or filled == 0 or (filled - int(bad.sum())) / filled < _MOSTLY:
            continue
        shown = ", ".join(f"row {frame.index.get_loc(i) + 1}: {str(frame[col].loc[i])[:40]!r}" for i in bad[bad].index[:10])
        if on_bad == "coerce":
            logging.getLogger(__name__).warning(
                "Column %r in %s: %d values that are not numbers read as missing (%s); data.on_bad_numbers is coerce",
                str(col),
                source_name,
                int(bad.sum()),
                shown,
            )
            frame[col] = numbers
            continue
        raise DataError(
            f"Column {str(col)!r} in {source_name} holds numbers except {int(bad.sum())} value(s) ({shown}; rows "
            "counted from 1 after the header); fix them, or set data.on_bad_numbers: coerce to read them as missing."
        )
    return frame


class ColumnWarning(UserWarning):
    """A feature column tunedag leaves out (unique per row, or constant) or expands (a date)."""


def column_roles(frame: pd.DataFrame, target: str, cfg: DataConfig, source_name: str) -> tuple[pd.DataFrame, list[str]]:
    """Apply `data.drop` / `data.id` / `data.keep`; in a file's table, drop ID-like and constant columns with a
    warning and expand date columns into numeric parts. Return the frame (id columns kept) and its feature columns."""
    for key in ("drop", "id", "keep"):
        missing = [c for c in getattr(cfg, key) if c not in frame.columns or c == target]
        if missing:
            raise DataError(f"data.{key} names {missing}, which are not feature columns of {source_name}.")
    frame = frame.drop(columns=cfg.drop)
    role_columns = {*cfg.id, *(c for c in (cfg.group, cfg.time, cfg.weight) if c is not None)}
    features = [c for c in frame.columns if c != target and c not in role_columns]
    own_table = cfg.source == "file" and len(frame) >= 10  # bundled, synthetic and image data keep every column
    for col in [c for c in features if c not in cfg.keep and own_table]:
        values = frame[col]
        if values.nunique(dropna=False) <= 1:
            reason = "it holds a single value"
        elif values.is_unique and not pd.api.types.is_float_dtype(values) and len(values) > 20:
            reason = "it is unique per row, like an ID (list it in data.id to keep it for joining predictions)"
        else:
            parts = _date_parts(values)
            if parts is not None:
                frame = frame.drop(columns=col).assign(**{f"{col}_{k}": v for k, v in parts.items()})
                features = [f for f in features if f != col] + [f"{col}_{k}" for k in parts]
                warnings.warn(
                    f"data: column {col!r} holds dates; it is used as {', '.join(f'{col}_{k}' for k in parts)}",
                    ColumnWarning,
                    stacklevel=2,
                )
            continue
        features.remove(col)
        warnings.warn(
            f"data: column {col!r} is not used as a feature: {reason}; list it in data.keep to use it",
            ColumnWarning,
            stacklevel=2,
        )
    return frame, features


def _date_parts(values: pd.Series) -> dict[str, pd.Series] | None:
    """Year, month, day, weekday (and hour when times vary) of a datetime column or of text that is all ISO dates; else None."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            return None
        text = values.dropna().astype(str)
        if text.empty or not text.str.match(r"^\d{4}-\d{2}-\d{2}").all():
            return None
        try:
            values = pd.to_datetime(values, format="ISO8601")
        except (ValueError, TypeError):
            return None
    values = values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
    parts = {"year": values.dt.year, "month": values.dt.month, "day": values.dt.day, "weekday": values.dt.day_of_week}
    if (values.dt.hour.fillna(0) != 0).any():
        parts["hour"] = values.dt.hour
    return {k: v.astype(float) for k, v in parts.items()}


def infer_task(y: pd.Series) -> str:
    """Classification for text, boolean or small-integer targets; regression otherwise."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    if pd.api.types.is_integer_dtype(y) or np.all(np.mod(y, 1) == 0):
        return "classification" if y.nunique() <= _MAX_CLASSES_FOR_INT_TARGET else "regression"
    return "regression"


def _check_target(y: pd.Series, task: str, source_name: str, target: str) -> pd.Series:
    if task == "regression":
        numeric = pd.to_numeric(y, errors="coerce")
        if numeric.isna().any():
            bad = y[numeric.isna()].iloc[0]
            raise DataError(f"Target column {target!r} in {source_name} must be numeric for regression; found {bad!r}.")
        if not np.isfinite(numeric.astype(float)).all():
            raise DataError(f"Target column {target!r} in {source_name} holds infinite values; regression needs finite numbers.")
        return numeric.astype(float)
    counts = y.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"Target column {target!r} in {source_name} has a single class ({counts.index[0]!r}); classification needs at least two."
        )
    rare = counts[counts < 3]
    if len(rare):
        raise DataError(
            f"Target column {target!r} in {source_name}: classes {list(rare.index)} have fewer than 3 rows, too few to split train/validation/test."
        )
    return y.astype(str) if not pd.api.types.is_numeric_dtype(y) else y


def _column_kinds(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    return [str(c) for c in numeric], [str(c) for c in categorical]


def _normalise_categoricals(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    frame = frame.rename(columns=str)
    for col in categorical:
        values = frame[col].astype(object)
        frame[col] = values.where(values.notna(), None).map(lambda v: v if v is None else str(v)).astype(object)
    return frame


def _check_role_columns(frame: pd.DataFrame, target: str, cfg: DataConfig, source_name: str) -> pd.DataFrame:
    """Refuse a `data.group` / `data.time` / `data.weight` column that is missing, the target, unorderable (time) or not
    non-negative numbers (weight). Under `time` the rows are returned sorted by it (stable), a text time parsed as dates."""
    for key in ("group", "time", "weight"):
        col = getattr(cfg, key)
        if col is not None and (col not in frame.columns or col == target):
            raise DataError(
                f"data.{key} names {col!r}, which is not a column of {source_name} other than the target; "
                f"its columns are: {', '.join(map(str, frame.columns[:30]))}."
            )
    if cfg.group is not None and frame[cfg.group].isna().any():
        raise DataError(
            f"data.group column {cfg.group!r} in {source_name} has {int(frame[cfg.group].isna().sum())} empty cells; "
            "every row needs a group."
        )
    if cfg.weight is not None:
        weights = frame[cfg.weight]
        numeric = pd.api.types.is_numeric_dtype(weights) and not pd.api.types.is_bool_dtype(weights)
        values = weights.to_numpy(dtype=float) if numeric else None
        if values is None or not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
            raise DataError(
                f"data.weight column {cfg.weight!r} in {source_name} must hold finite, non-negative numbers in every row, "
                f"not all zero (found dtype {weights.dtype}, e.g. {weights.iloc[0]!r}); fix the column or unset data.weight."
            )
    if cfg.time is not None:
        frame = frame.assign(**{cfg.time: _orderable(frame[cfg.time], cfg.time, source_name)})
        frame = frame.sort_values(cfg.time, kind="stable").reset_index(drop=True)
    return frame


def _orderable(values: pd.Series, col: str, source_name: str) -> pd.Series:
    """A time column as numbers or datetimes (text parsed as dates); refused when it cannot be ordered or has gaps."""
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)) or pd.api.types.is_bool_dtype(
        values
    ):
        try:
            values = pd.to_datetime(values, format="mixed")
        except (ValueError, TypeError, OverflowError):
            raise DataError(
                f"data.time column {col!r} in {source_name} is neither numbers nor dates (e.g. {values.iloc[0]!r}), "
                "so its rows cannot be ordered; name a date or numeric column, or unset data.time."
            ) from None
    if values.isna().any():
        raise DataError(
            f"data.time column {col!r} in {source_name} has {int(values.isna().sum())} empty cells; every row needs a time to be ordered."
        )
    return values


def _assign_group_splits(y: pd.Series, groups: pd.Series, task: str, cfg: DataConfig, seed: int, source_name: str) -> np.ndarray:
    """Train / val / test with each `data.group` on one side: stratified by class (StratifiedGroupKFold's first fold)
    for classification, GroupShuffleSplit for regression; seeded."""
    needed = 3 if cfg.val_size > 0 else 2
    if groups.nunique() < needed:
        raise DataError(
            f"data.group column {groups.name!r} in {source_name} has {groups.nunique()} distinct groups; "
            f"splitting train / {'val / ' if needed == 3 else ''}test by group needs at least {needed}."
        )
    labels = np.full(len(y), "train", dtype=object)
    rest = _group_holdout(np.arange(len(y)), y, groups.to_numpy(), task, cfg.test_size, seed, labels, "test")
    if cfg.val_size > 0:
        _group_holdout(rest, y, groups.to_numpy(), task, cfg.val_size / (1 - cfg.test_size), seed, labels, "val")
    selection = groups[labels != "test"].nunique()
    if isinstance(cfg.cv_folds, int) and selection < cfg.cv_folds:
        raise DataError(
            f"data.group column {groups.name!r} in {source_name} leaves {selection} groups outside the test split, "
            f"fewer than data.cv_folds ({cfg.cv_folds}); lower data.cv_folds or give the data more groups."
        )
    return labels


def _group_holdout(
    idx: np.ndarray, y: pd.Series, groups: np.ndarray, task: str, size: float, seed: int, labels: np.ndarray, name: str
) -> np.ndarray:
    """Label a `size` share of the rows `idx` (whole groups) as `name`; return the other rows."""
    folds = max(2, min(round(1 / size), len(np.unique(groups[idx]))))
    if task == "classification":
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    keep, held = next(splitter.split(idx, y.iloc[idx], groups[idx]))
    labels[idx[held]] = name
    return idx[keep]


def _assign_time_splits(rows: int, cfg: DataConfig, source_name: str) -> np.ndarray:
    """Train / val / test in time order (the frame is sorted by `data.time`): test the latest rows, val just before."""
    n_test = int(np.ceil(cfg.test_size * rows))
    n_val = int(np.ceil(cfg.val_size * rows)) if cfg.val_size > 0 else 0
    if rows - n_test - n_val < 2:
        raise DataError(
            f"Cannot split {source_name} by data.time with data.test_size={cfg.test_size}, data.val_size={cfg.val_size}."
        )
    return np.array(["train"] * (rows - n_test - n_val) + ["val"] * n_val + ["test"] * n_test, dtype=object)


def _assign_splits(y: pd.Series, task: str, cfg: DataConfig, seed: int, source_name: str) -> np.ndarray:
    stratify = y if task == "classification" else None
    idx = np.arange(len(y))
    try:
        rest, test = train_test_split(idx, test_size=cfg.test_size, random_state=seed, stratify=stratify)
        labels = np.full(len(y), "train", dtype=object)
        labels[test] = "test"
        if cfg.val_size > 0:
            strat_rest = None if stratify is None else y.iloc[rest]
            _, val = train_test_split(rest, test_size=cfg.val_size / (1 - cfg.test_size), random_state=seed, stratify=strat_rest)
            labels[val] = "val"
    except ValueError as exc:
        raise DataError(
            f"Cannot split {source_name} with data.test_size={cfg.test_size}, data.val_size={cfg.val_size}: {exc}"
        ) from None
    return labels


def save_prepared(prep: Prepared, path: Path, extra_meta: dict | None = None) -> None:
    """Write the prepared dataset atomically (no half-written file on failure)."""
    meta = {
        "target": prep.target,
        "task": prep.task,
        "numeric": prep.numeric,
        "categorical": prep.categorical,
        "problem": problem_of(prep).to_dict(),
        **prep.roles,
        **(extra_meta or {}),
    }
    table = pa.Table.from_pandas(prep.frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


@lru_cache(maxsize=4)
def load_prepared(path: Path, version: str) -> Prepared:
    """Read a prepared dataset (cached per path and version, so a process's trials share one frame).

    The frame's columns are views of the memory-mapped Arrow cache beside the Parquet (`tunedag.shared_table`), so the
    worker processes of a machine share one copy of the table; the cache is rebuilt whenever the Parquet changes.
    """
    require_prepared(path)
    frame, meta = read_shared(path, file_md5(path), _META_KEY)
    return Prepared(frame, meta["target"], meta["task"], tuple(meta["numeric"]), tuple(meta["categorical"]), **roles_of(meta))


def require_prepared(path: Path) -> None:
    """Refuse a missing prepared dataset, naming the file and the key (`paths.prepared`)."""
    if not path.is_file():
        raise DataError(f"Prepared dataset {path} (paths.prepared) is missing; run the prepare stage first (dvc repro prepare).")


def file_md5(path: Path) -> str:
    """The MD5 of a file's bytes: the hash DVC 3 records for it in dvc.lock (computed once per file state)."""
    stat = Path(path).stat()
    return _md5(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _md5(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
