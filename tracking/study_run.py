"""A study's pipeline run in MLflow: the parent of its trial runs, holding the study's settings and data; closed with its outcome."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from studies.storage import worker_id
from tracking.lineage import log_dataset
from tracking.runs import log_values, start_run
from tracking.store import Tracker
from tracking.tags import TAG_DATA_VERSION, TAG_OWNER, TAG_ROLE
from tunedag.config import Config
from tunedag.data import Prepared

TAG_STOP_REASON = "tunedag.stop_reason"


def settings(cfg: Config) -> dict[str, object]:
    """The search's settings, as the pipeline run's parameters."""
    tune, data = cfg.tune, cfg.data
    return {
        "seed": cfg.seed,
        "estimator": cfg.model.estimator or ",".join(cfg.model.families),
        **{"sampler": tune.sampler.name, "pruner": tune.pruner.name, "fidelity": tune.fidelity.kind},
        **{"n_trials": tune.n_trials, "metric": tune.metric, "objectives": ",".join(tune.objectives)},
        **{"parallelism": tune.parallelism, "cv_folds": data.cv_folds, "data_source": data.source},
    }


@contextmanager
def study_run(
    tracker: Tracker, cfg: Config, study_name: str, prepared: Prepared, tags: dict[str, str], interrupted: tuple[type, ...]
) -> Iterator[str]:
    """The id of the study's pipeline run, created with `tags`, the settings and the dataset, owned by this process.

    FINISHED when the block ends; an exception of a type in `interrupted` closes it KILLED ("interrupted"), any other
    FAILED with its message as `tunedag.stop_reason`. A store that fails then is left alone: the next run closes it as stale.
    """
    parent = start_run(tracker, f"pipeline-{study_name}", {**tags, TAG_ROLE: "pipeline", TAG_OWNER: worker_id()}).info.run_id
    try:
        log_values(tracker.client, parent, params=settings(cfg))
        log_dataset(tracker.client, parent, prepared, cfg, tags[TAG_DATA_VERSION])
        yield parent
    except BaseException as exc:
        stopped = isinstance(exc, interrupted)
        try:
            log_values(tracker.client, parent, tags={TAG_STOP_REASON: "interrupted" if stopped else str(exc)[:5000]})
            tracker.client.set_terminated(parent, status="KILLED" if stopped else "FAILED")
        except Exception:
            pass
        raise
    tracker.client.set_terminated(parent, status="FINISHED")
