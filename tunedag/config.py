"""The typed schema of `params.yaml`, validated once at the entry point and passed down.

Every path, seed, metric and direction the pipeline uses comes from here; `dvc.yaml`
reads the same file through `${...}` interpolation, so nothing is typed twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunedag.errors import ConfigError
from tunedag.estimators import check_estimator_path, estimator_param_names
from tunedag.metrics import METRICS, check_metric_for_task

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticConfig(_Strict):
    """Size of `make_classification` / `make_regression` data."""

    n_samples: int = Field(1000, ge=20, le=10_000_000)
    n_features: int = Field(20, ge=1, le=10_000)
    n_informative: int = Field(10, ge=1)
    n_classes: int = Field(2, ge=2)
    noise: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _informative_fits(self) -> SyntheticConfig:
        if self.n_informative > self.n_features:
            raise ValueError("n_informative must not exceed n_features")
        return self


class DataConfig(_Strict):
    """Where the data comes from and how it is split."""

    source: Literal["sklearn", "synthetic", "file"]
    name: str | None = None
    path: Path | None = None
    target: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    synthetic: SyntheticConfig = SyntheticConfig()
    test_size: float = Field(0.2, gt=0, lt=1)
    val_size: float = Field(0.2, ge=0, lt=1)
    cv_folds: int = Field(0, ge=0, le=100)

    @model_validator(mode="after")
    def _source_fields(self) -> DataConfig:
        if self.source == "sklearn" and self.name not in SKLEARN_DATASETS:
            raise ValueError(f"name must be one of {', '.join(SKLEARN_DATASETS)} when source is 'sklearn' (got {self.name!r})")
        if self.source == "file" and (self.path is None or not self.target):
            raise ValueError("source 'file' needs both 'path' (a .csv or .parquet file) and 'target' (the label column)")
        if self.source == "file" and self.path.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise ValueError(f"path {self.path} must end in .csv or .parquet")
        if self.source == "synthetic" and self.task == "auto":
            raise ValueError("source 'synthetic' needs task: classification or regression")
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (use the validation split) or at least 2")
        if self.cv_folds == 0 and self.val_size == 0:
            raise ValueError("val_size must be above 0 unless cv_folds >= 2")
        if self.test_size + self.val_size >= 0.9:
            raise ValueError("test_size + val_size leaves under 10% of the rows for training")
        return self


class PreprocessConfig(_Strict):
    """Preprocessing fitted inside the model pipeline, on training rows only."""

    numeric_impute: Literal["mean", "median", "most_frequent"] = "median"
    scale: bool = True
    max_categories: int | None = Field(20, ge=2)


class ModelConfig(_Strict):
    """The estimator to tune, named by import path, with its fixed arguments."""

    estimator: str
    fixed: dict[str, Any] = {}
    preprocess: PreprocessConfig = PreprocessConfig()
    trusted_types: list[str] = []

    @field_validator("estimator")
    @classmethod
    def _estimator_exists(cls, value: str) -> str:
        check_estimator_path(value)
        return value

    @model_validator(mode="after")
    def _fixed_are_params(self) -> ModelConfig:
        unknown = sorted(set(self.fixed) - estimator_param_names(self.estimator))
        if unknown:
            raise ValueError(f"fixed names {unknown}, which {self.estimator} does not accept")
        return self


class FloatParam(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self


class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("log needs step 1")
        return self


Choice = Union[None, bool, int, float, str]


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _unique(cls, value: list[Choice]) -> list[Choice]:
        if len({repr(v) for v in value}) != len(value):
            raise ValueError("choices must be unique")
        return value


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


def _check_range(low: float, high: float, log: bool) -> None:
    if low >= high:
        raise ValueError(f"low ({low}) must be below high ({high}); put a constant in model.fixed")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0 (got {low})")


class TpeConfig(_Strict):
    """TPE arguments, all explicit: Optuna's defaults move between releases."""

    n_startup_trials: int = Field(10, ge=0)
    multivariate: bool = True
    constant_liar: bool = True


class TuneConfig(_Strict):
    """How the study runs."""

    sampler: Literal["grid", "random", "tpe"] = "tpe"
    tpe: TpeConfig = TpeConfig()
    n_trials: int = Field(20, ge=1, le=1_000_000)
    timeout: float | None = Field(None, gt=0)
    metric: str = "accuracy"
    direction: Literal["maximize", "minimize"] | None = None
    parallelism: int = Field(1, ge=1, le=256)
    max_failed_trials: int = Field(10, ge=0)
    storage: str = "optuna/study.journal"
    study_name: str = Field("tunedag", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; choose one of {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _direction_matches(self) -> TuneConfig:
        natural = METRICS[self.metric].direction
        if self.direction is not None and self.direction != natural:
            raise ValueError(f"direction {self.direction!r} contradicts metric {self.metric!r}, which is {natural}d")
        return self

    @property
    def resolved_direction(self) -> str:
        return METRICS[self.metric].direction


class TrackingConfig(_Strict):
    """Where MLflow records runs: a database file plus an artifact folder by default."""

    uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_root: Path = Path("mlruns/artifacts")
    experiment: str = Field("tunedag", min_length=1)


class FinalConfig(_Strict):
    registered_model: str = Field("tunedag-model", min_length=1)


class PathsConfig(_Strict):
    """Every file the stages exchange; `dvc.yaml` interpolates the same keys."""

    raw_dir: Path = Path("data/raw")
    prepared: Path = Path("data/prepared/dataset.parquet")
    tune_summary: Path = Path("reports/tune/summary.json")
    model_dir: Path = Path("models/final")
    tune_metrics: Path = Path("metrics/tune.json")
    test_metrics: Path = Path("metrics/test.json")
    history_plot: Path = Path("plots/optimization_history.csv")


class Config(_Strict):
    """The whole of `params.yaml`."""

    seed: int = Field(42, ge=0, le=2**32 - 1)
    paths: PathsConfig = PathsConfig()
    data: DataConfig
    model: ModelConfig
    search_space: dict[str, Param] = Field(min_length=1)
    tune: TuneConfig = TuneConfig()
    tracking: TrackingConfig = TrackingConfig()
    final: FinalConfig = FinalConfig()

    @model_validator(mode="after")
    def _space_fits_model(self) -> Config:
        accepted = estimator_param_names(self.model.estimator)
        for name in self.search_space:
            if name not in accepted:
                raise ValueError(f"search_space.{name} is not a parameter of {self.model.estimator}")
            if name in self.model.fixed:
                raise ValueError(f"search_space.{name} is also in model.fixed; keep it in one place")
        if self.data.task != "auto":
            check_metric_for_task(self.tune.metric, self.data.task)
        return self


def load_config(path: Path | str = "params.yaml", overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate `params.yaml`; raise ConfigError with one paragraph naming the key."""
    path = Path(path)
    raw = _read_yaml(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
    except ConfigError as exc:
        raise ConfigError(f"{path} is invalid: {exc}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist; copy params.yaml from the repository root.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{path} is not valid YAML (only plain YAML is read, no Python tags): {detail}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (seed, data, model, search_space, tune, ...), got {type(raw).__name__}.")
    return raw


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Override {dotted}: {key} is not a section.")
    node[leaf] = value


def _format_errors(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        parts.append(f"{loc or '(top level)'}: {msg}")
    return f"{path} is invalid: " + "; ".join(parts) + "."


def _is_union_tag(part: Any) -> bool:
    return part in ("float", "int", "categorical") or str(part).startswith("function-")
