"""The typed schema of `params.yaml`, validated once at the entry point and passed down.

Every path, seed, metric and direction the pipeline uses comes from here; `dvc.yaml`
reads the same file through `${...}` interpolation, so nothing is typed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)

from tunedag.checks import check_family
from tunedag.config_exec import RunnerConfig
from tunedag.config_schedule import ScheduleConfig
from tunedag.config_search import (
    EnsembleConfig,
    FidelityConfig,
    NoPrunerConfig,
    PrunerConfig,
    SamplerConfig,
    SelectionConfig,
    TpeSamplerConfig,
    WarmStartConfig,
    pruner_shorthand,
    sampler_shorthand,
)
from tunedag.config_types import Float, Int
from tunedag.config_yaml import MAX_BYTES, load_yaml_text
from tunedag.errors import ConfigError, redact
from tunedag.estimators import (
    check_estimator_path,
    estimator_param_names,
    fit_takes_on_epoch,
    is_torch_estimator,
    resolve_estimator,
)
from tunedag.imports import allowing, check_import_path, check_module_name
from tunedag.metrics import METRICS, check_metric_for_task
from tunedag.paths import inside_project, output_folder
from tunedag.presets import expand as expand_presets

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SyntheticConfig(_Strict):
    """Size of `make_classification` / `make_regression` data."""

    n_samples: Int = Field(1000, ge=20, le=10_000_000)
    n_features: Int = Field(20, ge=1, le=10_000)
    n_informative: Int = Field(10, ge=1)
    n_classes: Int = Field(2, ge=2)
    noise: Float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _informative_fits(self) -> SyntheticConfig:
        if self.n_informative > self.n_features:
            raise ValueError("n_informative must not exceed n_features")
        return self


class DataConfig(_Strict):
    """Where the data comes from and how it is split."""

    source: Literal["sklearn", "synthetic", "file", "npz"]
    name: str | None = None
    path: Path | None = None
    target: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    synthetic: SyntheticConfig = SyntheticConfig()
    test_size: Float = Field(0.2, gt=0, lt=1)
    val_size: Float = Field(0.2, ge=0, lt=1)
    cv_folds: Union[Annotated[Int, Field(ge=0, le=100)], Literal["auto"]] = "auto"  # auto: resolved by tunedag.presets
    on_bad_numbers: Literal["refuse", "coerce"] = "refuse"  # a few non-numbers in a numeric column (tunedag.data)
    # Column roles: `drop` never used; `id` kept beside the rows (to join predictions) but not a feature;
    # `keep` used as features even when unique per row or constant (which are otherwise dropped with a warning).
    # `group`: rows sharing its value stay on one side of every split and CV fold; `time`: an ordered split (test the
    # latest rows) and forward-only CV folds; `weight`: sample weights in fit and metrics. None of the three is a feature.
    drop: list[str] = []
    id: list[str] = []
    keep: list[str] = []
    group: str | None = None
    time: str | None = None
    weight: str | None = None

    _one_or_many = field_validator("drop", "id", "keep", mode="before")(lambda cls, v: [v] if isinstance(v, str) else v)

    @model_validator(mode="after")
    def _source_fields(self) -> DataConfig:
        if self.source == "sklearn" and self.name not in SKLEARN_DATASETS:
            raise ValueError(f"name must be one of {', '.join(SKLEARN_DATASETS)} when source is 'sklearn' (got {self.name!r})")
        if self.source == "file" and (self.path is None or not self.target):
            raise ValueError("source 'file' needs both 'path' (a .csv or .parquet file) and 'target' (the label column)")
        if self.source == "file" and self.path.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise ValueError(f"path {self.path} must end in .csv or .parquet")
        if self.source == "npz" and (self.path is None or self.path.suffix.lower() != ".npz"):
            raise ValueError("source 'npz' needs 'path': a .npz file holding arrays X (N, H, W) or (N, C, H, W) and y (N,)")
        if self.source == "synthetic" and self.task == "auto":
            raise ValueError("source 'synthetic' needs task: classification or regression")
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (use the validation split) or at least 2")
        if self.cv_folds == 0 and self.val_size == 0:
            raise ValueError("val_size must be above 0 unless cv_folds >= 2")
        if self.test_size + self.val_size >= 0.9:
            raise ValueError("test_size + val_size leaves under 10% of the rows for training")
        if self.group is not None and self.time is not None:
            raise ValueError(
                f"group ({self.group!r}) and time ({self.time!r}) cannot be set together: a split is either by group or by time"
            )
        _check_roles_distinct(self)
        return self


def _check_roles_distinct(data: DataConfig) -> None:
    """Each column has at most one role, and none is the target."""
    seen: dict[str, str] = {}
    for key in ("target", "group", "time", "weight", "id", "drop", "keep"):
        value = getattr(data, key)
        for col in [value] if isinstance(value, str) else (value or []):
            if col in seen and seen[col] != key:
                raise ValueError(f"column {col!r} is named by both {seen[col]} and {key}; give each column one role")
            seen[col] = key


class PreprocessConfig(_Strict):
    """Preprocessing fitted inside the model pipeline, on training rows only."""

    numeric_impute: Literal["mean", "median", "most_frequent"] = "median"
    scale: bool = True
    max_categories: Int | None = Field(20, ge=2)


class _ParamBase(_Strict):
    # The parameter exists only when each named earlier parameter takes one of the listed values.
    when: dict[str, list[Any]] = {}


class FloatParam(_ParamBase):
    type: Literal["float"]
    low: Float
    high: Float
    log: bool = False
    step: Float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self


class IntParam(_ParamBase):
    type: Literal["int"]
    low: Int
    high: Int
    log: bool = False
    step: Int = Field(1, ge=1)

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("log needs step 1")
        return self


Choice = Union[None, bool, int, float, str]


class CategoricalParam(_ParamBase):
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _unique(cls, value: list[Choice]) -> list[Choice]:
        if len({repr(v) for v in value}) != len(value):
            raise ValueError("choices must be unique")
        return value


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


class FamilyConfig(_Strict):
    """One model family of a study that chooses between several: its estimator (or train_fn) and sub-space."""

    estimator: str | None = None
    train_fn: str | None = None  # "package.module:function", see tunedag.custom
    fixed: dict[str, Any] = {}
    search_space: dict[str, Param] = {}

    @field_validator("estimator")
    @classmethod
    def _estimator_exists(cls, value: str | None) -> str | None:
        if value is not None:
            check_estimator_path(value)
        return value

    _train_fn_exists = field_validator("train_fn")(lambda cls, v: _check_train_fn(v))

    @model_validator(mode="after")
    def _params_fit(self) -> FamilyConfig:
        if (self.estimator is None) == (self.train_fn is None):
            raise ValueError(
                "set either estimator (a scikit-learn estimator class) or train_fn (your own training function), not both or neither"
            )
        _check_estimator_args(self.estimator, self.fixed, self.search_space, "search_space.")
        _check_factories(self.fixed, self.search_space, "fixed.", "search_space.")
        return self


class ModelConfig(_Strict):
    """The estimator to tune by import path with its fixed arguments, or several `families` to choose from."""

    allowed_modules: list[str] = []  # module prefixes import paths may name beyond tunedag.imports.ALLOWED_MODULES
    estimator: str | None = None
    train_fn: str | None = None  # "package.module:function" trained and scored by your own code, see tunedag.custom
    fixed: dict[str, Any] = {}
    families: dict[str, FamilyConfig] = {}
    preprocess: PreprocessConfig = PreprocessConfig()
    trusted_types: list[str] = []

    @model_validator(mode="wrap")
    @classmethod
    def _allowing(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> ModelConfig:
        with allowing(_listed_modules(data)):
            return handler(data)

    _allowed_names = field_validator("allowed_modules")(lambda cls, v: [check_module_name(m) for m in v])

    @field_validator("estimator")
    @classmethod
    def _estimator_exists(cls, value: str | None) -> str | None:
        if value is not None:
            check_estimator_path(value)
        return value

    _train_fn_exists = field_validator("train_fn")(lambda cls, v: _check_train_fn(v))

    @field_validator("families")
    @classmethod
    def _family_names(cls, value: dict) -> dict:
        bad = [n for n in value if not n.isidentifier()]
        if bad:
            raise ValueError(f"family names must be identifiers (letters, digits, _): {bad}")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> ModelConfig:
        if [self.estimator is not None, self.train_fn is not None, bool(self.families)].count(True) != 1:
            raise ValueError(
                "set either estimator (one model), train_fn (your own training function) "
                "or families (a choice between models): exactly one of them"
            )
        if self.families and self.fixed:
            raise ValueError("with families, put fixed arguments under each family")
        if self.estimator:
            unknown = sorted(set(self.fixed) - estimator_param_names(self.estimator))
            if unknown:
                raise ValueError(f"fixed names {unknown}, which {self.estimator} does not accept")
        _check_factories(self.fixed, {}, "model.fixed.", "")
        return self


def _listed_modules(data: Any) -> list[str]:
    """The well-formed names of a raw (or validated) model section's allowed_modules; the field validator refuses others."""
    listed = data.get("allowed_modules") if isinstance(data, dict) else getattr(data, "allowed_modules", None)
    names = []
    for name in listed if isinstance(listed, list) else []:
        try:
            names.append(check_module_name(name))
        except ConfigError:
            pass
    return names


def _check_factories(fixed: dict[str, Any], space: dict[str, Any], fixed_key: str, space_key: str) -> None:
    """A torch estimator's module_factory (fixed, or a categorical's choices) must name an allowed module; nothing is imported."""
    paths = [(f"{fixed_key}module_factory", fixed.get("module_factory"))]
    paths += [(f"{space_key}module_factory", c) for c in getattr(space.get("module_factory"), "choices", [])]
    for key, path in paths:
        if path is not None:
            check_import_path(path, key, "'mypkg.nets:build'")


def _check_train_fn(path: str | None) -> str | None:
    if path is not None:
        from tunedag.custom import resolve_train_fn

        resolve_train_fn(path, enforce=True)
    return path


def _check_range(low: float, high: float, log: bool) -> None:
    if low >= high:
        raise ValueError(f"low ({low}) must be below high ({high}); put a constant in model.fixed")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0 (got {low})")


# Objectives besides the metrics: both minimised, measured on the validation split.
EXTRA_OBJECTIVES = {"predict_latency_ms": "minimize", "model_size_kb": "minimize"}


ENQUEUE_INLINE_BYTES = 16_384  # a longer tune.enqueue is shown in Prefect's flow-run parameters by reference


def enqueue_reference(configs: list[dict[str, Any]]) -> list[dict[str, Any]] | dict[str, Any]:
    """`tune.enqueue` as JSON for Prefect's flow-run parameters: as is when short, else what it is and its digest.

    Prefect refuses flow-run parameters over 512 kB; a legitimate list of thousands of
    configurations exceeds that. The flow itself gets the full list from the config object.
    """
    import hashlib
    import json

    text = json.dumps(configs, sort_keys=True, default=str)
    if len(text) <= ENQUEUE_INLINE_BYTES:
        return configs
    return {
        "by_reference": "tune.enqueue of the config file (params.yaml or --params, with its --set overrides)",
        "configurations": len(configs),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


class TuneConfig(_Strict):
    """How the study searches, prunes, stops and selects."""

    sampler: SamplerConfig = TpeSamplerConfig(name="tpe")
    pruner: PrunerConfig = NoPrunerConfig(name="none")
    fidelity: FidelityConfig = FidelityConfig()
    n_trials: Int = Field(20, ge=1, le=1_000_000)
    timeout: Float | None = Field(None, gt=0)
    patience: Int | None = Field(None, ge=1)
    target: Float | None = None
    metric: str = "accuracy"
    direction: Literal["maximize", "minimize"] | None = None
    objectives: list[str] = []
    select: SelectionConfig = SelectionConfig()
    enqueue: list[dict[str, Any]] = []
    warm_start: WarmStartConfig | None = None
    parallelism: Int = Field(1, ge=1, le=256)
    executor: Literal["process", "thread"] = "process"  # where the objective runs (see docs/parallel.md)
    trial_timeout: Float | None = Field(None, gt=0)  # seconds; enforced by the process executor
    trial_memory_mb: Int | None = Field(None, ge=64)  # address space a trial may use; enforced by the process executor
    threads_per_trial: Int | None = Field(None, ge=1, le=1024)  # BLAS / torch threads; default: cores // parallelism
    runner: RunnerConfig = RunnerConfig()
    max_failed_trials: Int = Field(10, ge=0)
    storage: str = "optuna/study.journal"
    journal_sync: bool = False  # fsync each journal write (survives a power cut); off: survives a killed process
    study_name: str = Field("tunedag", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")

    # JSON (what Prefect stores as flow-run parameters) never carries the password; Python access does.
    _hide_storage_password = field_serializer("storage", when_used="json")(lambda self, v: redact(v))
    # A long enqueue list travels by reference: the flow run gets the config object, Prefect's record of it a digest.
    _enqueue_by_reference = field_serializer("enqueue", when_used="json")(lambda self, v: enqueue_reference(v))

    _sampler_shorthand = field_validator("sampler", mode="before")(lambda cls, v: sampler_shorthand(v))
    _pruner_shorthand = field_validator("pruner", mode="before")(lambda cls, v: pruner_shorthand(v))

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS and not value.isidentifier():
            raise ValueError(f"unknown metric {value!r}; choose one of {', '.join(METRICS)}")
        return value

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in METRICS and v not in EXTRA_OBJECTIVES]
        if unknown:
            raise ValueError(f"unknown objectives {unknown}; choose metrics or {', '.join(EXTRA_OBJECTIVES)}")
        if len(set(value)) != len(value):
            raise ValueError("objectives must be unique")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TuneConfig:
        if self.metric not in METRICS and self.direction is None:
            raise ValueError(
                f"tune.metric {self.metric!r} is unknown; choose one of {', '.join(METRICS)} "
                "(a train_fn model may name its own metric, with tune.direction: maximize or minimize)"
            )
        natural = self.resolved_direction
        if self.direction is not None and self.direction != natural:
            raise ValueError(f"direction {self.direction!r} contradicts metric {self.metric!r}, which is {natural}d")
        if self.metric in self.objectives:
            raise ValueError(f"objectives repeat tune.metric {self.metric!r}; list only the other objectives")
        multi = bool(self.objectives)
        if multi and self.pruner.name != "none":
            raise ValueError("pruning needs a single objective; set pruner: none or drop objectives")
        if multi and (self.patience or self.target is not None):
            raise ValueError("patience and target need a single objective")
        if multi and self.sampler.name in ("cmaes", "gp", "grid"):
            raise ValueError(f"sampler {self.sampler.name} handles a single objective; use nsga2, tpe, random or qmc")
        if self.sampler.name == "manual" and not self.enqueue:
            raise ValueError("sampler manual evaluates the configurations in tune.enqueue, which is empty")
        if self.pruner.name != "none" and self.fidelity.kind == "none":
            raise ValueError(
                "a pruner needs intermediate values: set fidelity.kind (folds, train_fraction, ensemble_size or epochs)"
            )
        if self.executor == "thread" and (self.trial_timeout or self.trial_memory_mb):
            raise ValueError("trial_timeout and trial_memory_mb are enforced only by executor: process")
        if self.select.rule == "weighted" and len(self.select.weights) != 1 + len(self.objectives):
            raise ValueError(
                f"select.weights needs {1 + len(self.objectives)} numbers: one for tune.metric and one per objective"
            )
        return self

    @property
    def resolved_direction(self) -> str:
        """The metric's own direction; for a train_fn's own metric, tune.direction."""
        return METRICS[self.metric].direction if self.metric in METRICS else self.direction

    @property
    def directions(self) -> list[str]:
        """The direction of tune.metric, then of each extra objective."""
        return [self.resolved_direction] + [
            METRICS[o].direction if o in METRICS else EXTRA_OBJECTIVES[o] for o in self.objectives
        ]


class TrackingConfig(_Strict):
    """Where MLflow records runs: a database file plus an artifact folder by default."""

    uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_root: Path = Path("mlruns/artifacts")
    experiment: str = Field("tunedag", min_length=1)

    _hide_uri_password = field_serializer("uri", when_used="json")(lambda self, v: redact(v))


class FinalConfig(_Strict):
    """The final model: its registry name, and optionally an ensemble of the top trials."""

    registered_model: str = Field("tunedag-model", min_length=1)
    ensemble: EnsembleConfig = EnsembleConfig()


class PathsConfig(_Strict):
    """Every file the stages exchange; `dvc.yaml` interpolates the same keys."""

    raw_dir: Path = Path("data/raw")
    prepared: Path = Path("data/prepared/dataset.parquet")
    tune_summary: Path = Path("reports/tune/summary.json")
    model_dir: Path = Path("models/final")
    single_model_dir: Path = Path("models/single_best")  # the best single trial, when final is an ensemble
    tune_metrics: Path = Path("metrics/tune.json")
    test_metrics: Path = Path("metrics/test.json")
    history_plot: Path = Path("plots/optimization_history.csv")
    report_dir: Path = Path("reports/study")  # the study report: index.html, figures, DVC plot tables

    # Outputs stay inside the project (the working directory); the model folders, which train replaces, only where tunedag
    # wrote them before (tunedag.paths). paths.prepared and raw_dir are not checked here.
    _outputs_inside = field_validator("tune_summary", "tune_metrics", "test_metrics", "history_plot", "report_dir")(
        lambda cls, v, info: inside_project(v, f"paths.{info.field_name}")
    )
    _model_dirs_ours = field_validator("model_dir", "single_model_dir")(
        lambda cls, v, info: output_folder(v, f"paths.{info.field_name}")
    )


@dataclass(frozen=True)
class Family:
    """One estimator (or train_fn) with its fixed arguments and search space (a study has one or several)."""

    estimator: str | None
    fixed: dict[str, Any]
    space: dict[str, Param]
    train_fn: str | None = None


class Config(_Strict):
    """The whole of `params.yaml`."""

    seed: Int = Field(42, ge=0, le=2**32 - 1)
    paths: PathsConfig = PathsConfig()
    data: DataConfig
    model: ModelConfig
    search_space: dict[str, Param] = {}
    tune: TuneConfig = TuneConfig()
    tracking: TrackingConfig = TrackingConfig()
    final: FinalConfig = FinalConfig()
    schedule: ScheduleConfig = ScheduleConfig()

    @model_validator(mode="wrap")
    @classmethod
    def _allowing(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Config:
        model = data.get("model") if isinstance(data, dict) else getattr(data, "model", None)
        with allowing(_listed_modules(model if model is not None else {})):
            return handler(data)

    @model_validator(mode="before")
    @classmethod
    def _presets(cls, raw: Any) -> Any:
        return expand_presets(raw)  # the model preset, tune.metric auto, data.cv_folds auto

    @model_validator(mode="after")
    def _space_fits_model(self) -> Config:
        if self.model.estimator or self.model.train_fn:
            if not self.search_space:
                raise ValueError("search_space is empty: declare at least one parameter to tune")
            _check_estimator_args(self.model.estimator, self.model.fixed, self.search_space, "search_space.", "model.fixed")
            _check_factories({}, self.search_space, "", "search_space.")
        elif self.search_space:
            raise ValueError("with model.families, declare each family's search_space under it, not at the top")
        _check_torch_and_train_fn(self)
        if self.data.task != "auto":
            for metric in [self.tune.metric, *(o for o in self.tune.objectives if o in METRICS)]:
                if metric in METRICS:
                    check_metric_for_task(metric, self.data.task)
        conditional = any(p.when for f in self.families.values() for p in f.space.values())
        if self.tune.sampler.name == "grid" and (len(self.families) > 1 or conditional):
            raise ValueError("tune.sampler grid needs one model and no conditional (when) parameters")
        if self.tune.fidelity.kind == "folds" and self.data.cv_folds < 2:
            raise ValueError("tune.fidelity.kind folds needs data.cv_folds >= 2")
        if self.tune.fidelity.kind in ("train_fraction", "ensemble_size") and self.data.cv_folds >= 2:
            raise ValueError(
                f"tune.fidelity.kind {self.tune.fidelity.kind} works on the validation split; set data.cv_folds to 0 or use kind folds"
            )
        if self.tune.fidelity.kind == "ensemble_size":
            for family in self.families.values():
                names = estimator_param_names(family.estimator)
                if not {self.tune.fidelity.param, "warm_start"} <= names:
                    raise ValueError(
                        f"tune.fidelity ensemble_size needs an estimator with warm_start and {self.tune.fidelity.param}; {family.estimator} lacks them"
                    )
        return self

    @property
    def families(self) -> dict[str, Family]:
        """The model families by name; a single-model config is one family named ''."""
        if self.model.estimator or self.model.train_fn:
            return {"": Family(self.model.estimator, self.model.fixed, self.search_space, self.model.train_fn)}
        return {n: Family(f.estimator, f.fixed, f.search_space, f.train_fn) for n, f in self.model.families.items()}


def _check_torch_and_train_fn(cfg: Config) -> None:
    """Refuse what makes no sense with a train_fn, a custom metric, fidelity epochs or a torch network."""
    families, tune = cfg.families.values(), cfg.tune
    own = [f.train_fn for f in families if f.train_fn]
    if tune.metric not in METRICS and len(own) != len(families):
        raise ValueError(
            f"tune.metric {tune.metric!r} is not a known metric; only train_fn models may name their own "
            f"(choose one of {', '.join(METRICS)})"
        )
    if own and (cfg.data.cv_folds >= 2 or tune.fidelity.kind not in ("none", "epochs")):
        raise ValueError(
            "a train_fn model gets the train and validation splits and reports its own steps: set "
            "data.cv_folds to 0 and tune.fidelity.kind to none or epochs"
        )
    if own and any(o in EXTRA_OBJECTIVES for o in tune.objectives):
        raise ValueError(f"tune.objectives {sorted(EXTRA_OBJECTIVES)} need a fitted estimator; a train_fn returns metrics only")
    torch = [f.estimator for f in families if f.estimator and is_torch_estimator(f.estimator)]
    if (own or torch) and cfg.final.ensemble.kind != "none":
        raise ValueError(
            f"final.ensemble.kind {cfg.final.ensemble.kind} cannot combine torch networks or train_fn models "
            "into one saved model; set final.ensemble.kind: none"
        )
    if tune.fidelity.kind == "epochs":
        _check_epoch_fidelity(cfg)


def _check_epoch_fidelity(cfg: Config) -> None:
    if cfg.data.cv_folds >= 2:
        raise ValueError("tune.fidelity.kind epochs reports each epoch on the validation split; set data.cv_folds to 0")
    if cfg.tune.pruner.name == "hyperband" and cfg.tune.pruner.max_resource is None:
        raise ValueError(
            "tune.pruner hyperband with fidelity epochs needs tune.pruner.max_resource: the largest number of epochs"
        )
    for family in cfg.families.values():
        if family.estimator and not fit_takes_on_epoch(resolve_estimator(family.estimator)):
            raise ValueError(
                f"tune.fidelity.kind epochs needs an estimator whose fit takes on_epoch (tunedag.nets."
                f"TorchClassifier, TorchRegressor); {family.estimator} has none"
            )
        if family.estimator and family.fixed.get("validation_fraction", 1) == 0:
            raise ValueError(
                "tune.fidelity.kind epochs prunes on the estimator's validation split; "
                "model.fixed.validation_fraction must be above 0"
            )


def _check_estimator_args(
    estimator: str | None, fixed: dict[str, Any], space: dict[str, Param], prefix: str, fixed_key: str = "fixed"
) -> None:
    accepted = estimator_param_names(estimator) if estimator else None  # a train_fn takes any names
    seen: dict[str, Param] = {}
    for name, param in space.items():
        if accepted is not None and name not in accepted:
            raise ValueError(f"{prefix}{name} is not a parameter of {estimator}")
        if name in fixed:
            raise ValueError(f"{prefix}{name} is also in {fixed_key}; keep it in one place")
        for parent, values in param.when.items():
            choices = getattr(seen.get(parent), "choices", None)
            if choices is None:
                raise ValueError(
                    f"{prefix}{name}.when names {parent!r}, which must be a categorical parameter declared before it"
                )
            if any(v not in choices for v in values):
                raise ValueError(f"{prefix}{name}.when lists values {values} not all among {parent}'s choices {choices}")
        seen[name] = param
    if estimator:
        check_family(estimator, fixed, space, prefix, fixed_key)


def load_config(path: Path | str = "params.yaml", overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate `params.yaml`; raise ConfigError with one paragraph naming the key (and `--set` for an override)."""
    path = Path(path)
    raw = _read_yaml(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc, overrides or {})) from None
    except ConfigError as exc:
        raise ConfigError(f"{path} is invalid: {exc}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"Config file {path} does not exist; copy params.yaml from the repository root.")
    if not path.is_file():
        raise ConfigError(f"Config file {path} is not a regular file (a directory, FIFO or device); give a params.yaml file.")
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(f"Config file {path} is {path.stat().st_size} bytes, over the {MAX_BYTES} a params file may hold.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {path} is not UTF-8 text (byte {exc.start} cannot be read; save it as UTF-8).") from None
    raw = load_yaml_text(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of sections (seed, data, model, search_space, tune, ...), got {type(raw).__name__}."
        )
    return raw


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {key} is not a section.")
    node[leaf] = value


def _format_errors(path: Path, exc: ValidationError, overrides: dict[str, Any]) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        elif err["type"] in ("int_type", "float_type", "finite_number", "bool_type", "string_type"):
            msg += f" (got {str(err['input']).lower() if isinstance(err['input'], bool) else repr(err['input'])[:60]})"
        blamed = [key for key in overrides if loc == key or loc.startswith(f"{key}.")]
        if blamed:
            loc = f"{loc} (from --set {blamed[0]})"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return f"{path} is invalid: " + "; ".join(parts) + "."


def _is_union_tag(part: Any) -> bool:
    return part in ("float", "int", "categorical") or str(part).startswith("function-")
