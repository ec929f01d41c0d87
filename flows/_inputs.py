"""What a stage needs on disk before its flow runs: light (no Prefect), so a command checks it before the flow's imports."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from stageio.files import read_json

if TYPE_CHECKING:
    from tunedag.config import Config


def prepared(cfg: Config) -> None:
    """The tune stage and its workers start from the dataset the prepare stage wrote."""
    from tunedag.data import require_prepared  # pandas: loaded once the config is

    require_prepared(cfg.paths.prepared)


def tune_summary(cfg: Config) -> None:
    """The train and evaluate stages start from the summary the tune stage wrote."""
    read_json(cfg.paths.tune_summary, "paths.tune_summary")


def report_inputs(cfg: Config) -> None:
    """The report reads the tune summary and the test scores the evaluate stage wrote."""
    tune_summary(cfg)
    read_json(cfg.paths.test_metrics, "paths.test_metrics")


def data_path(cfg: Config) -> None:
    """The prepare stage (and the pipeline) refuse a data.path that is no regular file, a CSV with repeated names,
    or a data.weight that an estimator cannot take."""
    from tunedag.data import check_data_path
    from tunedag.objective import check_weight_support

    check_data_path(cfg.data)
    check_weight_support(cfg)  # data.weight needs estimators whose fit takes sample_weight: refused before prepare writes


def stores(cfg: Config) -> None:
    """A database named by tracking.uri or tune.storage answers one connect (MLflow would retry it for about 100 s)."""
    from services.reach import check_reachable

    check_reachable(cfg.tracking.uri, "tracking.uri")
    check_reachable(cfg.tune.storage, "tune.storage")


def tune_inputs(cfg: Config) -> str:
    """Refuse what the tune stage (or a worker) cannot run before anything is written; return the data version."""
    from integrity.checks import verify_prepared
    from studies.seeding import check_warm_start_source
    from tracking.lineage import check_registry_problem
    from tunedag.data import SPLIT, load_prepared
    from tunedag.errors import TunedagError
    from tunedag.estimators import check_estimator_for_task
    from tunedag.metrics import METRICS, check_metric_for_task
    from tunedag.objective import check_roles
    from tunedag.problem import problem_of
    from tunedag.samplers import build_sampler
    from tunedag.space import check_configuration

    version = verify_prepared(cfg)  # not what the prepare stage wrote (or DVC recorded): refused
    prep = load_prepared(cfg.paths.prepared, version)
    for metric in [m for m in (cfg.tune.metric, *cfg.tune.objectives) if m in METRICS]:  # a train_fn may name its own
        check_metric_for_task(metric, prep.task)
    for family in cfg.families.values():
        check_estimator_for_task(family.estimator, family.fixed, prep.task)
    check_roles(cfg, prep)  # data.weight: every estimator's fit takes sample_weight; enough data.group groups for the folds
    if cfg.tune.sampler.name == "grid":
        build_sampler(cfg)
    for i, params in enumerate(cfg.tune.enqueue):
        check_configuration(params, cfg, f"tune.enqueue[{i}]")
    check_warm_start_source(cfg)
    check_registry_problem(cfg, problem_of(prep))  # another problem under final.registered_model: refused before any trial
    if cfg.data.cv_folds == 0 and not (prep.frame[SPLIT] == "val").any():
        raise TunedagError(
            f"{cfg.paths.prepared} has no validation rows; set data.val_size above 0 or data.cv_folds to 2 or more."
        )
    return version


def _each(*checks: Callable[[Config], None]) -> Callable[[Config], None]:
    def check(cfg: Config) -> None:
        for one in checks:
            one(cfg)

    return check


# module of a stage's flow -> its check
CHECKS = {
    "flows.prepare": data_path,
    "flows.pipeline": _each(data_path, stores),
    "flows.tune": _each(stores, prepared),
    "flows.worker": _each(stores, prepared),
    "flows.train": _each(stores, tune_summary),
    "flows.evaluate": _each(stores, tune_summary),
    "flows.report": report_inputs,
}
