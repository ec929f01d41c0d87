"""The `tunedag` command: help, overrides, one-paragraph errors with exit code 2, status on a fresh folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.flows.conftest import subprocess_env
from tunedag.config import load_config
from tunedag.data import load_source, prepare, save_prepared

# Each case starts the command in a new process (a few seconds of imports), on the session's Prefect API.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
TUNEDAG = str(Path(sys.executable).parent / "tunedag")
COMMANDS = ("run", "prepare", "tune", "train", "evaluate", "report", "worker", "serve", "deploy", "ui", "status")


def _tunedag(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([TUNEDAG, *args], cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_and_each_command_takes_params_and_set(tmp_path):
    done = _tunedag("--help", cwd=tmp_path)

    assert done.returncode == 0 and all(name in done.stdout for name in COMMANDS)
    for name in ("run", "serve", "status"):
        sub = _tunedag(name, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "--params" in sub.stdout and "--set" in sub.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("tune", "--params", "missing.yaml"), ["missing.yaml", "does not exist"]),
        (("serve", "--set", "schedule.cron=61 * * * *"), ["schedule.cron", "not a cron expression"]),
        (("run", "--set", "tune.n_trials"), ["--set 'tune.n_trials'", "section.key=value"]),
        (("train",), ["paths.tune_summary", "is missing"]),
    ],
    ids=[
        "missing-params",
        "bad-cron",
        "override-without-value",
        "train-without-tune-summary",
    ],  # the other bad-input cases: test_config, test_errors
)
def test_bad_input_is_one_paragraph_naming_the_key_with_exit_code_2_and_nothing_written(project, args, words):
    before = sorted(p.relative_to(project) for p in project.rglob("*"))

    done = _tunedag(*args, cwd=project)

    message = done.stderr.strip()
    assert done.returncode == 2 and message.startswith("tunedag: error:") and "\n" not in message, done.stderr
    assert all(w in message for w in words), message
    assert "Traceback" not in done.stderr
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


@pytest.mark.parametrize("stage", ["tune", "worker"])
def test_tune_without_prepared_data_is_refused_before_its_flow_runs(project, stage):
    done = _tunedag(stage, cwd=project)

    message = done.stderr.strip()
    assert done.returncode == 2 and message.startswith("tunedag: error:") and "\n" not in message, done.stderr
    assert "paths.prepared" in message and "dataset.parquet" in message
    assert "Beginning flow run" not in done.stderr + done.stdout and not (project / ".tunedag").exists()


def test_a_refusal_inside_the_tune_flow_prints_the_paragraph_alone(project):
    """A worker cut off, or Prefect's report of the failed run, would print a traceback."""
    cfg = load_config(project / "params.yaml")
    frame, target = load_source(cfg.data, cfg.seed)
    save_prepared(prepare(frame, target, cfg.data, cfg.seed, str(cfg.data.path)), cfg.paths.prepared)

    for _ in range(2):  # the worker cut off was a race: 3 of 4 runs before the fix
        done = _tunedag("tune", "--set", "tune.metric=rmse", cwd=project)  # refused by the flow's own check

        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and lines[-1].startswith("tunedag: error: tune.metric 'rmse'"), done.stderr
        assert "Traceback" not in done.stderr and "Failed" not in done.stderr + done.stdout, done.stderr


def test_an_unknown_command_exits_non_zero(tmp_path):
    assert _tunedag("tunee", cwd=tmp_path).returncode != 0


def test_status_on_a_fresh_project_reads_and_creates_nothing(project):
    before = sorted(p.relative_to(project) for p in project.rglob("*"))

    done = _tunedag("status", cwd=project)

    assert done.returncode == 0 and "not prepared yet" in done.stdout
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before
