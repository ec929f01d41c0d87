"""Lineage in MLflow: the data a run read (a dataset input), the problem a registered model serves, the rows a version trained on.

No Prefect here: a stage's early input check can call `check_registry_problem` before the flow's imports.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path

import mlflow.data
import numpy as np
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from tracking.store import client_for, not_created
from tunedag.config import Config
from tunedag.data import SPLIT, Prepared
from tunedag.errors import TunedagError, redact
from tunedag.problem import TAG_FEATURES, TAG_PROBLEM, Problem, problem_tags

TRAINING_ROWS = "tunedag/training_rows.npy"  # on a version's run: the content hash of each row it was fitted on
TAG_TRAINING_ROWS = "tunedag.training_rows"  # on the version: how many, and where


def dataset_input(prep: Prepared, path: Path, version: str, source_name: str) -> DatasetInput:
    """The prepared dataset as an MLflow dataset input: source the file, digest its DVC md5, its schema, named by data and target."""
    key = (str(Path(path).resolve()), version, source_name)
    if key not in _DATASETS:
        _DATASETS.clear()  # one data version at a time
        _DATASETS[key] = _dataset(prep, *key)
    return DatasetInput(_DATASETS[key], [InputTag(MLFLOW_DATASET_CONTEXT, "training")])


_DATASETS: dict[tuple[str, str, str], Dataset] = {}  # built once per data version: every trial run logs the same entity


def _dataset(prep: Prepared, path: str, version: str, source_name: str) -> Dataset:
    head = prep.frame.head(100)  # the schema only: MLflow's own digest and profile of the frame are not used
    with warnings.catch_warnings():  # its hint on integer columns is about model signatures, not a record of the data
        warnings.simplefilter("ignore", UserWarning)
        described = mlflow.data.from_pandas(
            head, targets=prep.target, name=f"{source_name} -> {prep.target}", digest=version
        ).to_dict()
    profile = {
        "num_rows": len(prep.frame),
        "num_elements": int(prep.frame.size),
        "splits": {str(k): int(v) for k, v in prep.frame[SPLIT].value_counts().items()},
    }
    return Dataset(
        name=described["name"],
        digest=version,
        source_type="local",
        source=json.dumps({"uri": path}),
        schema=described.get("schema"),
        profile=json.dumps(profile),
    )


def log_dataset(client: MlflowClient, run_id: str, prep: Prepared, cfg: Config, version: str) -> None:
    """Log `paths.prepared` (data version `version`) as the run's dataset input, so the UI's Dataset column names it."""
    client.log_inputs(run_id, datasets=[dataset_input(prep, cfg.paths.prepared, version, data_name(cfg))])


def data_name(cfg: Config) -> str:
    """The data as a user names it: the file `data.path`, or the bundled / synthetic source."""
    if cfg.data.source in ("sklearn", "synthetic"):
        return f"{cfg.data.source}:{cfg.data.name or cfg.data.task}"
    return str(cfg.data.path)


def check_registry_problem(cfg: Config, problem: Problem) -> None:
    """Refuse data of another problem than the one `final.registered_model` serves, before anything is written.

    A registered model's versions all serve one problem (its `tunedag.problem` tag, set with its
    first version). Reads only: a store or a model that does not exist yet binds nothing.
    """
    uri, name = cfg.tracking.uri, cfg.final.registered_model
    if not_created(uri):
        return
    try:
        model = client_for(uri).get_registered_model(name)
    except MlflowException:  # no such model yet
        return
    bound = model.tags.get(TAG_PROBLEM)
    if bound is None or bound == problem.id:
        return
    theirs = model.tags.get(TAG_FEATURES, f"problem {bound}")
    raise TunedagError(
        f"final.registered_model {name!r} (in {redact(uri)}) serves {theirs}; this data ({data_name(cfg)}) is "
        f"{problem.describe()}. Every version of a registered model serves one problem (task, target and feature columns), "
        f"so its champion is only ever compared with models of that problem. Set final.registered_model to a new name "
        f"for this data (its first version becomes that model's champion, and {name!r} keeps its aliases), or point "
        "data.path back at data of that problem. Nothing was written."
    )


def bind_version(client: MlflowClient, name: str, version: str, problem: Problem) -> None:
    """Tag a new version (and, with its first version, the registered model) with the problem it serves."""
    model = client.get_registered_model(name)
    if TAG_PROBLEM not in model.tags:
        for key, value in problem_tags(problem).items():
            client.set_registered_model_tag(name, key, value)
    for key, value in problem_tags(problem).items():
        client.set_model_version_tag(name, version, key, value)


def record_training_rows(client: MlflowClient, name: str, version: str, run_id: str, hashes: np.ndarray) -> None:
    """Store the content hashes of the rows a version was fitted on beside its model (once)."""
    with tempfile.TemporaryDirectory(prefix="tunedag-rows-") as tmp:
        path = Path(tmp) / Path(TRAINING_ROWS).name
        np.save(path, np.sort(hashes))
        client.log_artifact(run_id, str(path), str(Path(TRAINING_ROWS).parent))
    client.set_model_version_tag(name, version, TAG_TRAINING_ROWS, f"{len(hashes)} rows, runs:/{run_id}/{TRAINING_ROWS}")


def training_rows(client: MlflowClient, version) -> np.ndarray | None:
    """The row hashes a version recorded, or None (registered before they were recorded)."""
    if TAG_TRAINING_ROWS not in version.tags:
        return None
    run_id = version.tags[TAG_TRAINING_ROWS].rsplit("runs:/", 1)[-1].split("/", 1)[0]
    with tempfile.TemporaryDirectory(prefix="tunedag-rows-") as tmp:
        try:
            local = client.download_artifacts(run_id, TRAINING_ROWS, tmp)
        except (MlflowException, OSError):
            return None
        return np.load(io.BytesIO(Path(local).read_bytes()), allow_pickle=False)
