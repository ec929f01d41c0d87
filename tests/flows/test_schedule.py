"""Scheduled runs: a served deployment on a real Prefect server, re-tuning on new data, champion / challenger."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from flows.pipeline import pipeline_flow
from flows.prepare import prepare_flow
from reporting.status import status_lines
from studies.storage import study_name
from tests.flows.conftest import SHRINK
from tests.flows.ledger import load_study, study_runs
from tests.flows.services import free_port, stop
from tracking.lineage import check_registry_problem
from tracking.store import absolute_uri, client_for
from tracking.tags import TAG_PLAN, TAG_PROMOTION
from tunedag.config import load_config
from tunedag.data import file_md5, load_prepared
from tunedag.errors import TunedagError
from tunedag.metrics import score
from tunedag.problem import read_problem
from tunedag.promotion import row_hashes, unseen_rows

pytestmark = pytest.mark.slow
SMALL = {
    **SHRINK,
    "tune.n_trials": 4,
    "tune.executor": "thread",
}  # the process pool is tested elsewhere; here it only costs start-up


def _versions(cfg) -> dict[str, object]:
    client = client_for(cfg.tracking.uri)
    return {str(v.version): v for v in client.search_model_versions(f"name = '{cfg.final.registered_model}'")}


def _alias(cfg, alias: str) -> str:
    return str(client_for(cfg.tracking.uri).get_model_version_by_alias(cfg.final.registered_model, alias).version)


# ---------------------------------------------------------------- a served deployment on a real Prefect server


def _start_prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }  # the API is what is tested; the UI's files cost seconds at start
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return proc, url
        except OSError:
            assert proc.poll() is None and time.time() < deadline, (home / "server.log").read_text()[-3000:]
            time.sleep(0.5)


def _wait_for_deployment(client, name: str, serve: subprocess.Popen, log: Path):
    deadline = time.time() + 120
    while True:
        try:
            return client.read_deployment_by_name(name)
        except Exception:
            assert serve.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(1)


def test_served_deployment_has_the_params_cron_runs_on_a_real_server_and_a_pooled_run_skips_unchanged_data(project, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["schedule"].update(cron="30 4 * * 1-5", timezone="Europe/Paris", deployment="nightly")
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    home = tmp_path / "prefect-server"
    home.mkdir()
    server, api = _start_prefect_server(home)
    overrides = [
        arg
        for key, value in SMALL.items()
        for arg in ("--set", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}")
    ]
    # The served runner and the pool's worker look for due runs every second instead of every 10 s.
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(tmp_path / "prefect-client"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    log = project / "serve.log"
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "tunedag"), "serve", *overrides],
        cwd=project,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with temporary_settings({PREFECT_API_URL: api}):
            with get_client(sync_client=True) as client:
                deployment = _wait_for_deployment(client, "tunedag-scheduled/nightly", serve, log)
            (schedule,) = deployment.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == ("30 4 * * 1-5", "Europe/Paris", True)
            assert deployment.parameters["params"] == str(project / "params.yaml") and deployment.parameters["workdir"] == str(
                project
            )

            first = run_deployment("tunedag-scheduled/nightly", timeout=600, poll_interval=0.5, as_subflow=False)
            assert first.state.is_completed(), log.read_text()[-4000:]
            stop(serve)
            # The same pipeline registered on a work pool and run by a Prefect process worker: a second run on the
            # same data, which skips.
            tunedag = str(Path(sys.executable).parent / "tunedag")
            prefect = str(Path(sys.executable).parent / "prefect")
            subprocess.run(
                [prefect, "work-pool", "create", "tunedag-pool", "--type", "process"], env=env, check=True, capture_output=True
            )
            done = subprocess.run(
                [tunedag, "deploy", "--pool", "tunedag-pool", *overrides, "--set", "schedule.deployment=pooled"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0 and "registered on work pool tunedag-pool" in done.stdout, done.stderr[-3000:]
            worker = subprocess.Popen(
                [prefect, "worker", "start", "--pool", "tunedag-pool"],
                cwd=tmp_path,
                env=env,
                stdout=(project / "worker.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            pooled = run_deployment("tunedag-scheduled/pooled", timeout=600, poll_interval=0.5, as_subflow=False)
            assert pooled.state.is_completed(), (project / "worker.log").read_text()[-4000:]
    finally:
        for proc in (serve, server, locals().get("worker")):
            if proc is not None and proc.poll() is None:
                stop(proc)

    cfg = load_config(project / "params.yaml", SMALL)
    study = load_study(cfg)
    assert len(study.trials) == 4  # the pooled run skipped: no trial, no pipeline run, no model version
    (parent,) = study_runs(cfg, study.study_name, "pipeline")
    assert "started cold" in parent.data.tags[TAG_PLAN]
    assert list(_versions(cfg)) == ["1"] and _alias(cfg, "champion") == "1"
    assert "skipped (schedule.on_same_data: skip)" in (project / "worker.log").read_text()
    assert (project / "reports/study/index.html").is_file()


# ---------------------------------------------------------------- re-tuning on new data, promotion


@pytest.fixture
def file_project(project: Path):
    """The project reading a CSV of the breast-cancer data (so the data can change between runs)."""
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(project / "data/raw/cancer.csv", index=False)
    return frame


def _file_config(project: Path, **overrides):
    base = {**SMALL, "data.source": "file", "data.path": "data/raw/cancer.csv", "data.target": "target"}
    return load_config(project / "params.yaml", base | {k.replace("__", "."): v for k, v in overrides.items()})


@pytest.mark.usefixtures("prefect_server")
def test_same_data_skips_or_adds_trials_then_a_worse_model_is_challenger_and_another_problem_is_refused(project, file_project):
    """One project through the decisions on unchanged data (one first run for both stories: it is most of the cost)."""
    cfg = _file_config(project)
    pipeline_flow(cfg)

    assert "skipped (schedule.on_same_data: skip)" in pipeline_flow(cfg)["skipped"]
    assert len(load_study(cfg).trials) == 4 and list(_versions(cfg)) == ["1"]

    more = _file_config(project, schedule__on_same_data="add_trials", schedule__add_trials=3)
    scores = pipeline_flow(more)

    study = load_study(more)
    assert len([t for t in study.trials if t.state.is_finished()]) == 7
    parents = sorted(study_runs(more, study.study_name, "pipeline"), key=lambda r: r.info.start_time)
    assert len(parents) == 2 and "3 more trials" in parents[1].data.tags[TAG_PLAN]
    reason = _versions(more)["2"].tags[TAG_PROMOTION]
    assert ("beats" in reason) == (_alias(more, "champion") == "2")
    assert f"{scores['test_roc_auc']:.6g}" in reason
    lines = status_lines(more)
    assert any(line.startswith(f"study: {study.study_name}: 7 trials (7 complete)") for line in lines)
    assert f"  plan: {parents[1].data.tags[TAG_PLAN]}" in lines
    assert any(line.startswith(f"champion: {more.final.registered_model} version ") for line in lines)

    # A worse model on the same data becomes the challenger; the champion keeps its alias.
    champion = _alias(more, "champion")
    stumps = {"type": "int", "low": 1, "high": 2}
    worse = _file_config(project, **{"search_space.max_depth": stumps, "search_space.n_estimators": stumps})

    pipeline_flow(worse)

    assert _alias(worse, "champion") == champion and _alias(worse, "challenger") == "3"
    reason = _versions(worse)["3"].tags[TAG_PROMOTION]
    assert f"does not beat champion version {champion} on the same test split" in reason
    assert any(line == f"challenger: {worse.final.registered_model} version 3: {reason}" for line in status_lines(worse))

    # Data of another problem (a column gone) is refused for the registered model.
    file_project.drop(columns=["mean radius"]).to_csv(project / "data/raw/cancer.csv", index=False)
    prepare_flow(worse)

    with pytest.raises(TunedagError) as refused:
        check_registry_problem(worse, read_problem(worse.paths.prepared))
    assert f"final.registered_model {worse.final.registered_model!r}" in str(refused.value)
    assert _versions(worse)["3"].tags["tunedag.problem"] in str(refused.value)


def _rows_added(frame, n: int = 250, seed: int = 2):
    """`frame` with `n` new rows (copies of sampled rows, every feature moved by up to 2%): a new data version, the same problem."""
    rng = np.random.default_rng(seed)
    new = frame.sample(n, random_state=seed).reset_index(drop=True)
    features = [c for c in new.columns if c != "target"]
    new[features] = new[features] * rng.uniform(0.98, 1.02, size=(n, len(features)))
    return pd.concat([frame, new], ignore_index=True)


@pytest.mark.usefixtures("prefect_server")
def test_new_data_warm_starts_a_new_study_and_promotes_only_a_better_model(project, file_project):
    cfg = _file_config(project)
    pipeline_flow(cfg)
    old = load_study(cfg)
    old_prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    _rows_added(file_project).to_csv(project / "data/raw/cancer.csv", index=False)  # new data, the same problem

    scores = pipeline_flow(cfg)

    new = load_study(cfg)
    assert new.study_name != old.study_name == study_name(cfg, old.user_attrs["data_version"])
    assert new.user_attrs["tunedag.problem"] == old.user_attrs["tunedag.problem"]
    (parent,) = study_runs(cfg, new.study_name, "pipeline")
    assert parent.data.tags["tunedag.warm_start_from"] == old.study_name == parent.data.tags["tunedag.retuned_from"]
    assert "data version changed" in parent.data.tags[TAG_PLAN] and "(the same problem," in parent.data.tags[TAG_PLAN]
    warm = [t for t in new.trials if "warm_start_from" in t.user_attrs]
    assert len(warm) == 4 and {t.params["max_depth"] for t in warm} == {t.params["max_depth"] for t in old.trials}
    (dataset,) = [d.dataset for d in client_for(cfg.tracking.uri).get_run(parent.info.run_id).inputs.dataset_inputs]
    assert dataset.digest == file_md5(cfg.paths.prepared) and str(cfg.paths.prepared.resolve()) in dataset.source

    # Both versions scored by hand on the new test rows neither was fitted on: the same comparison.
    prep = load_prepared(cfg.paths.prepared, file_md5(cfg.paths.prepared))
    X, y = prep.xy("test")
    fitted = [row_hashes(p.xy("train", "val")[0].assign(target=p.xy("train", "val")[1])) for p in (old_prep, prep)]
    mask = unseen_rows(X.assign(target=y), *fitted)
    assert 30 <= mask.sum() < len(mask)
    mlflow.set_tracking_uri(absolute_uri(cfg.tracking.uri))
    by_hand = {
        v: score(mlflow.sklearn.load_model(f"models:/{cfg.final.registered_model}/{v}"), X[mask], y[mask], ["roc_auc"])["roc_auc"]
        for v in ("1", "2")
    }
    promoted = by_hand["2"] > by_hand["1"]
    assert _alias(cfg, "champion") == ("2" if promoted else "1")
    reason = _versions(cfg)["2"].tags[TAG_PROMOTION]
    assert (
        f"{by_hand['2']:.6g} vs {by_hand['1']:.6g}" in reason and f"on the {mask.sum()} of its {len(mask)} rows neither" in reason
    )
    assert parent.data.tags[TAG_PROMOTION] == reason and scores["test_roc_auc"] > 0.9
    if not promoted:
        assert _alias(cfg, "challenger") == "2"
