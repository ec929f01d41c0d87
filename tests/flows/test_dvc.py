"""`dvc repro` runs the stages from dvc.yaml, is a no-op right after, re-runs only what a change touches; `dvc exp` compares overrides."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.flows.conftest import REPO, SHRINK, subprocess_env
from tests.flows.ledger import check_ledger, load_study, study_runs
from tracking.tags import TAG_DATA_VERSION
from tunedag.config import load_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
N_TRIALS, MORE = 4, 6  # the clone's study, then the experiment's: each stage's start-up is most of this test's time


def _dvc(project: Path, *args: str) -> str:
    env = {**subprocess_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["dvc", *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def _clone(tmp_path: Path) -> Path:
    """The repository's files (as a fresh clone would have them) in a new git repository."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    project = tmp_path / "project"
    for name in files:
        if (REPO / name).is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    # Trials in threads: the worker processes' start-up (their imports) would be most of each tune stage here,
    # and the process pool is tested end to end elsewhere (test_resume, test_pipeline).
    raw["tune"].update(n_trials=N_TRIALS, parallelism=2, executor="thread")
    raw["search_space"]["n_estimators"] = SHRINK["search_space.n_estimators"]
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(["git", *cmd], cwd=project, check=True, capture_output=True)
    return project


@pytest.mark.timeout(1200)  # nine stage commands, each a process's start-up: past 600 s on a 2-core machine shared by others
def test_dvc_repro_runs_the_pipeline_then_does_nothing_then_reruns_only_tuning_and_exp_compares_overrides(tmp_path, monkeypatch):
    project = _clone(tmp_path)
    _dvc(project, "repro")

    metrics = json.loads(_dvc(project, "metrics", "show", "--json"))
    shown = next(iter(metrics.values()))["data"]
    assert {"metrics/tune.json", "metrics/test.json"} <= set(shown)
    assert "test_roc_auc" in shown["metrics/test.json"]["data"] and "best_val_roc_auc" in shown["metrics/tune.json"]["data"]
    assert "Data and pipelines are up to date" in _dvc(project, "repro")

    monkeypatch.chdir(project)
    cfg = load_config("params.yaml")
    study = check_ledger(cfg, n_complete=N_TRIALS)
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    prepared_md5 = next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == str(cfg.paths.prepared))
    assert {r.data.tags[TAG_DATA_VERSION] for r in study_runs(cfg, study.study_name, "trial")} == {prepared_md5}

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["search_space"]["max_depth"]["high"] = 12
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    dry = _dvc(project, "repro", "--dry")
    assert "Stage 'prepare' didn't change" in dry and "Running stage 'tune'" in dry

    # DVC experiments: an override with -S runs as an experiment, and exp show / metrics diff compare it.
    subprocess.run(["git", "checkout", "params.yaml"], cwd=project, check=True, capture_output=True)
    for cmd in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"]):
        subprocess.run(["git", *cmd], cwd=project, check=True, capture_output=True)
    assert "Ran experiment(s): more-trials" in _dvc(project, "exp", "run", "-S", f"tune.n_trials={MORE}", "-n", "more-trials")

    diff = json.loads(_dvc(project, "metrics", "diff", "--json"))
    assert diff["metrics/tune.json"]["n_trials"] == {
        "old": N_TRIALS,
        "new": MORE,
        "diff": MORE - N_TRIALS,
    }
    (baseline,) = json.loads(_dvc(project, "exp", "show", "--json"))[1:]  # [workspace, the baseline commit with its experiments]
    (experiment,) = [rev for exp in baseline["experiments"] for rev in exp["revs"] if rev["name"] == "more-trials"]
    assert experiment["data"]["params"]["params.yaml"]["data"]["tune"]["n_trials"] == MORE
    assert experiment["data"]["metrics"]["metrics/tune.json"]["data"]["n_trials"] == MORE
    assert baseline["data"]["metrics"]["metrics/tune.json"]["data"]["n_trials"] == N_TRIALS
    assert len(load_study(load_config(project / "params.yaml")).trials) == MORE  # the experiment resumed the same study


# The project's packages, as the install lists them: a new package cannot escape the check.
PACKAGES = tuple(
    p.rstrip("*")
    for p in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
)


STAGES = ("prepare", "tune", "train", "evaluate", "report")
# One interpreter imports the third-party libraries every stage shares, then forks a child per stage that imports
# flows.<stage> and lists the first-party packages it brought in: what a fresh `tunedag <stage>` process imports of
# the project, for one start-up instead of five.
PROBE = """
import importlib, json, os, sys
import mlflow, optuna, pandas, prefect, sklearn
found = {"": sorted({m.split(".")[0] for m in sys.modules})}  # what every child starts with
for stage in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        importlib.import_module("flows." + stage)
        os.write(write, json.dumps(sorted({m.split(".")[0] for m in sys.modules})).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found[stage] = json.loads(pipe.read())
    os.wait()
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def imported_by_stage() -> dict[str, set[str]]:
    """The project's packages each stage's flow module imports, as a fresh process of its own would."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *STAGES], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    found = {stage: set(names) & set(PACKAGES) for stage, names in json.loads(done.stdout).items()}
    assert found.pop("") == set(), "the shared imports brought in none of the project's packages"
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_runs_tunedag_and_depends_on_every_package_its_flow_imports(stage, imported_by_stage):
    """So an edit to any module a stage imports (say make_model in tunedag/objective.py for train) re-runs it."""
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    imported = imported_by_stage[stage]

    assert declared["cmd"] == f"tunedag {stage}"
    assert {"flows", "tasks", "tunedag"} <= imported <= set(declared["deps"]), (imported, declared["deps"])
