"""Bad input at a stage's entry point: exit code 2, one paragraph naming the key or file, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.commands import TUNEDAG, tunedag

pytestmark = pytest.mark.usefixtures("prefect_server")


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _fails_cleanly(project: Path, command: str, args: list[str], capsys, *expected: str) -> None:
    before = _listing(project)
    assert tunedag(command, "--params", "params.yaml", *args) == 2
    err = capsys.readouterr().err.strip()
    assert "s3cret" not in err
    assert err.startswith("tunedag: error:") and "\n" not in err
    for word in expected:
        assert word in err
    assert _listing(project) == before, "nothing is written"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--set", "data.source=file", "--set", "data.path=data/raw/nope.csv", "--set", "data.target=y"],
            ["data/raw/nope.csv", "data.path"],
        ),
        (
            ["--set", "data.source=file", "--set", "data.path=data/raw/example_churn.csv", "--set", "data.target=label"],
            ["'label'", "data.target"],
        ),
        (
            ["--set", "data.name=diabetes", "--set", "data.task=classification", "--set", "tune.metric=accuracy"],
            ["classes", "target"],
        ),
    ],
    ids=["missing-file", "missing-target-column", "continuous-target-as-classes"],
)
def test_prepare_refuses_bad_data(project, capsys, args, expected):
    _fails_cleanly(project, "prepare", args, capsys, *expected)


def test_tune_refuses_a_missing_prepared_dataset(project, capsys):
    _fails_cleanly(project, "tune", [], capsys, "paths.prepared", "data/prepared/dataset.parquet")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "tune.metric=rmse"], ["tune.metric", "regression metric"]),
        (["--set", "model.estimator=sklearn.ensemble.RandomForestRegressor"], ["model.estimator", "regression estimator"]),
        (
            [
                "--set",
                "tune.sampler=grid",
                "--set",
                "search_space.n_estimators={type: int, low: 10, high: 50, step: 10}",
                "--set",
                "search_space.max_features={type: float, low: 0.1, high: 0.9}",
            ],
            ["search_space.max_features", "step"],
        ),
        (["--set", "tune.enqueue=[{n_estimators: 10, depth: 3}]"], ["tune.enqueue[0]", "depth"]),
        (["--set", "tune.warm_start={study: no-such-study}"], ["tune.warm_start.study", "no-such-study"]),
        (["--set", "tracking.uri=http://bob:s3cret@127.0.0.1:9"], ["tracking.uri", "cannot be reached", "bob:***@"]),
    ],
    ids=[
        "metric-for-another-task",
        "regressor-for-classes",
        "grid-without-step",
        "enqueue-unknown-param",
        "warm-start-unknown-study",
        "tracking-server-down",
    ],
)
def test_tune_refuses_what_cannot_work_before_writing(project, capsys, monkeypatch, args, expected):
    # A tracking server that does not answer is refused by the one-connect probe before MLflow's client, which
    # retries with back-off for about 2 minutes, is asked; no retries either way should a check reach MLflow.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert tunedag("prepare") == 0
    _fails_cleanly(project, "tune", args, capsys, *expected)


def test_train_refuses_a_missing_tune_summary(project, capsys):
    _fails_cleanly(project, "train", [], capsys, "paths.tune_summary")


# --- the real command line: `tunedag run --params bad.yaml` --------------------------

_BAD_SCHEMA = """
extras: 1
data: {source: sklearn, name: iris, test_size: 2}
model: {estimator: os.system}
search_space:
  max_depth: {type: int, low: 16, high: 2}
tune: {n_trails: 5, n_trials: ten}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _BAD_SCHEMA,
            [
                "extras: unknown key",
                "data.test_size",
                "model.estimator",
                "'os.system'",
                "refused",
                "tune.n_trails: unknown key",
                "tune.n_trials",
                "search_space.max_depth",
                "low (16)",
            ],
        ),
        ('seed: !!python/object/apply:os.system ["touch {marker}"]\n', ["bad.yaml", "not valid YAML"]),
        (
            "search_space: {}\ndata: {source: sklearn, name: iris}\nmodel: {estimator: sklearn.tree.DecisionTreeClassifier}\n",
            ["search_space is empty"],
        ),
    ],
    ids=["schema-errors", "python-yaml-tag", "empty-search-space"],
)
def test_the_pipeline_command_refuses_a_bad_config_file_writing_nothing(tmp_path, text, expected):
    import subprocess

    from tests.flows.conftest import subprocess_env

    marker = tmp_path / "pwned"
    (tmp_path / "bad.yaml").write_text(text.replace("{marker}", str(marker)))
    before = _listing(tmp_path)

    done = subprocess.run(
        [*TUNEDAG, "run", "--params", "bad.yaml"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stdout == ""
    err = done.stderr.strip()
    assert err.startswith("tunedag: error: bad.yaml") and "\n" not in err, err
    for word in expected:
        assert word in err, f"{word!r} not in {err}"
    assert _listing(tmp_path) == before, "nothing is written"
    assert not marker.exists()


# --- a refusal raised inside a flow run, through the real `tunedag` command ------------------------


@pytest.mark.slow
@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])
def test_a_refusal_raised_inside_the_flow_run_is_one_paragraph_without_prefects_traceback(project, debug):
    """prepare's task finds the data file without its target column; `--debug` brings the tracebacks back."""
    import subprocess
    import sys

    from tests.flows.conftest import subprocess_env

    tunedag = [str(Path(sys.executable).parent / "tunedag"), *(["--debug"] if debug else [])]
    args = ["prepare", "--set", "data.source=file", "--set", "data.path=data/raw/example_churn.csv", "--set", "data.target=label"]
    done = subprocess.run(
        [*tunedag, *args], cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False
    )

    assert done.returncode == 2, done.stderr[-3000:]
    assert "Beginning flow run" in done.stderr, "refused inside the flow run"
    paragraph = [line for line in done.stderr.splitlines() if line.startswith("tunedag: error:")]
    assert len(paragraph) == 1 and "data.target" in paragraph[0] and "'label'" in paragraph[0], done.stderr
    assert done.stderr.rstrip().endswith(paragraph[0])
    if debug:
        assert "Traceback" in done.stderr and "Finished in state Failed" in done.stderr
    else:
        assert "Traceback" not in done.stderr and "Failed" not in done.stderr, done.stderr
        assert "data.target" not in done.stderr.replace(paragraph[0], ""), "the message is printed once"
