"""Two clones of one commit and params.yaml tune the same trials, whatever earlier studies one of them holds (issue 22).

A stage command (`tunedag tune`, what `dvc repro` runs) warm-starts only from the study
`tune.warm_start` names in params.yaml, never from what happens to sit in `optuna/`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.prepare import prepare_flow
from flows.tune import run as tune_command
from studies.storage import build_storage
from tests.flows.conftest import REPO, SHRINK
from tests.flows.ledger import load_study, study_runs
from tunedag.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SAME = {**SHRINK, "tune.n_trials": 5, "tune.parallelism": 1, "tune.executor": "thread"}
# An earlier study of the same problem with another config (another study): its best configurations fit today's space.
EARLIER = {
    **SAME,
    "tune.n_trials": 3,
    "tune.sampler": {"name": "random"},
    "search_space.max_depth": {"type": "int", "low": 2, "high": 6},
}


def clone(root: Path) -> Path:
    """A project as a fresh clone has it: params.yaml, prefect.toml and the raw data."""
    root.mkdir()
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copy(REPO / "prefect.toml", root / "prefect.toml")
    shutil.copytree(REPO / "data" / "raw", root / "data" / "raw")
    return root


def tune_in(project: Path, overrides: dict, monkeypatch) -> list[dict]:
    """Prepare and tune in `project` as the stage commands do; the parameters of its study's trials, in order."""
    monkeypatch.chdir(project)
    cfg = load_config(project / "params.yaml", overrides)
    prepare_flow(cfg)
    tune_command(cfg)
    study = load_study(cfg)
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    assert "tunedag.warm_start_from" not in parent.data.tags, parent.data.tags
    return [t.params for t in study.trials]


def test_a_fresh_clone_and_one_with_an_earlier_study_tune_the_same_trials(tmp_path, monkeypatch):
    fresh, used = clone(tmp_path / "fresh"), clone(tmp_path / "used")
    earlier = tune_in(used, EARLIER, monkeypatch)
    assert len(earlier) == 3 and len(build_storage(str(used / "optuna" / "study.journal")).get_all_studies()) == 1

    in_used = tune_in(used, SAME, monkeypatch)
    in_fresh = tune_in(fresh, SAME, monkeypatch)
    assert len(build_storage(str(used / "optuna" / "study.journal")).get_all_studies()) == 2
    assert len(in_fresh) == 5 and in_used == in_fresh
    assert not [p for p in earlier if p in in_used], "the earlier study's configurations were not replayed"
