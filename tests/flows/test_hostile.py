"""Hostile and damaged input, end to end: corrupted DVC-tracked data, secrets in URLs, exposed servers, the DVC lock.

Each test runs the real programs (`dvc`, `mlflow server`, `tunedag`) in a temporary
project; the Prefect API is the session's test server.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from flows._inputs import tune_inputs
from flows.cli import UI_ENV
from integrity.checks import verify_tracked
from tests.flows.conftest import REPO, SHRINK, subprocess_env
from tests.flows.test_dvc import _clone
from tests.support.commands import TUNEDAG, tunedag
from tunedag.config import load_config
from tunedag.data import file_md5

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

BIN = Path(sys.executable).parent
SECRET = "s3cr3t-Pa55w0rd-q7"  # a password no log line, artifact or parameter may show


def run(project: Path, *cmd: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**subprocess_env(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def ok(project: Path, *cmd: str) -> str:
    done = run(project, *cmd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def set_params(project: Path, changes: dict) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def listing(root: Path) -> set[str]:
    skip = ("__pycache__", ".git", ".dvc/tmp")
    return {str(p.relative_to(root)) for p in root.rglob("*") if not any(s in str(p.relative_to(root)) for s in skip)}


def flip_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


# --- 6. corrupted DVC-tracked data -------------------------------------------------------------


def refused(capsys, command: str, *args: str) -> str:
    """Run a stage in-process as its CLI does; return its one-line error (exit code 2)."""
    assert tunedag(command, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunedag: error:") and "\n" not in err, err
    return err


def test_a_flipped_byte_in_the_prepared_dataset_stops_tuning_and_a_rebuild_does_not(tmp_path, monkeypatch, capsys):
    project = _clone(tmp_path)
    set_params(project, {"tune.n_trials": 1})
    ok(project, "dvc", "repro", "prepare")
    monkeypatch.chdir(project)
    prepared = Path("data/prepared/dataset.parquet")
    recorded = file_md5(prepared)

    flip_byte(prepared)
    before = listing(project)
    error = refused(capsys, "tune")

    for word in (str(prepared), "dvc.lock", recorded, file_md5(prepared), f"dvc checkout --force {prepared}"):
        assert word in error
    assert listing(project) == before, "nothing is written: no MLflow store, no Optuna journal"

    ok(project, "dvc", "checkout", "--force", str(prepared))
    assert verify_tracked(prepared, load_config("params.yaml")) == "match"

    # A rebuild outside DVC (what `tunedag run` does) from new inputs differs from dvc.lock: not corruption.
    set_params(project, {"data.test_size": 0.25})
    assert tunedag("prepare") == 0
    assert file_md5(prepared) != recorded
    assert verify_tracked(prepared, load_config("params.yaml")) == "stale"
    assert tune_inputs(load_config("params.yaml")) == file_md5(prepared)
    # `dvc repro` re-runs prepare, records it, and the tune stage starts on the new file.
    assert "Running stage 'tune'" in ok(project, "dvc", "repro", "tune")
    assert verify_tracked(prepared, load_config("params.yaml")) == "match"


def test_a_flipped_byte_in_a_dvc_added_data_file_stops_prepare(tmp_path, monkeypatch, capsys):
    project = _clone(tmp_path)
    raw = Path("data/raw/example_churn.csv")
    ok(project, "git", "rm", "-q", "--cached", str(raw))
    ok(project, "dvc", "add", str(raw))
    assert (project / f"{raw}.dvc").is_file()
    monkeypatch.chdir(project)
    recorded = file_md5(raw)
    args = ["--set", "data.source=file", "--set", f"data.path={raw}", "--set", "data.target=churn"]

    flip_byte(raw, at=200)
    before = listing(project)
    error = refused(capsys, "prepare", *args)

    for word in (str(raw), f"{raw}.dvc", recorded, f"dvc checkout --force {raw}", f"dvc add {raw}"):
        assert word in error
    assert listing(project) == before, "no prepared dataset is written"

    ok(project, "dvc", "checkout", "--force", str(raw))
    assert tunedag("prepare", *args) == 0
    assert Path("data/prepared/dataset.parquet").is_file()


# --- 8. secrets: a password in tracking.uri or tune.storage is never recorded or shown ---------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real `mlflow server` on 127.0.0.1 with its store under tmp_path; yields (url, store folder)."""
    store, port = tmp_path / "mlflow-server", free_port()
    store.mkdir()
    log = open(store / "server.log", "w")
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{store / 'm.db'}",
            "--artifacts-destination",
            str(store / "art"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=UI_ENV | dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                import urllib.request

                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (store / "server.log").read_text()[-3000:]
                time.sleep(0.5)
        yield url, store
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def _prefect_records() -> list[str]:
    """Every flow run, task run and log line the session's Prefect API holds, as JSON text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort, LogSort, TaskRunSort

    texts = []
    with get_client(sync_client=True) as client:
        for read, sort in (
            (client.read_flow_runs, FlowRunSort.ID_DESC),
            (client.read_task_runs, TaskRunSort.ID_DESC),
            (client.read_logs, LogSort.TIMESTAMP_ASC),
        ):
            offset = 0
            while True:
                page = read(limit=200, offset=offset, sort=sort)
                texts += [r.model_dump_json() for r in page]
                offset += len(page)
                if len(page) < 200:
                    break
    return texts


def _mlflow_records(url: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    client, texts = MlflowClient(url), []
    for exp in client.search_experiments():
        texts.append(json.dumps({"tags": exp.tags, "location": exp.artifact_location, "name": exp.name}))
        for run_ in client.search_runs([exp.experiment_id], max_results=1000):
            texts.append(json.dumps(run_.to_dictionary(), default=str))
    for model in client.search_registered_models():
        texts.append(json.dumps({"tags": model.tags, "description": model.description}))
        for version in client.search_model_versions(f"name = '{model.name}'"):
            texts.append(json.dumps({"source": version.source, "tags": version.tags, "run_link": version.run_link}))
    return texts


def _files_holding(root: Path, secret: str, skip: tuple[Path, ...] = ()) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path not in skip and secret.encode() in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


def test_passwords_in_tracking_and_storage_urls_appear_nowhere(project, mlflow_server):
    url, store = mlflow_server
    tracking_uri = url.replace("http://", f"http://bob:{SECRET}@")
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["tracking"]["uri"] = tracking_uri
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    shrink = [f"--set={k}={json.dumps(v)}" for k, v in {**SHRINK, "tune.n_trials": 3, "tune.executor": "thread"}.items()]

    done = run(project, *TUNEDAG, "run", "--params", "params.yaml", *shrink)
    assert done.returncode == 0, done.stderr[-4000:]
    # A storage URL with a password that cannot connect: its error path must not show the password either.
    bad_storage = run(
        project,
        *TUNEDAG,
        "tune",
        *shrink,
        f"--set=tracking.uri={url}",
        f"--set=tune.storage=postgresql://bob:{SECRET}@127.0.0.1:1/db",
    )
    assert bad_storage.returncode != 0 and "127.0.0.1" in bad_storage.stderr, bad_storage.stderr[-3000:]

    mlflow_texts = _mlflow_records(url)
    prefect_texts = _prefect_records()
    assert any("test_" in t and "metrics" in t for t in mlflow_texts), "the scan reads the runs"
    flow_runs = [t for t in prefect_texts if '"parameters"' in t and '"cfg"' in t]
    assert any("bob:***@127.0.0.1" in t for t in flow_runs), "flow runs keep the redacted URL"
    leaks = {
        "pipeline output": SECRET in done.stdout + done.stderr,
        "storage error output": SECRET in bad_storage.stdout + bad_storage.stderr,
        "MLflow params, tags, runs, models": [t[:200] for t in mlflow_texts if SECRET in t],
        "MLflow database and artifacts": _files_holding(store, SECRET, skip=(store / "server.log",)),
        "Prefect flow runs, task runs, logs": [t[:300] for t in prefect_texts if SECRET in t],
        "files the pipeline wrote": _files_holding(project, SECRET, skip=(project / "params.yaml",)),
    }
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}


# --- 10. exposure: every server the project starts listens on 127.0.0.1 only -------------------------

SERVER_COMMANDS = re.compile(
    r"\b(mlflow (ui|server)|prefect server start|uvicorn|gunicorn|dask[- ]scheduler|http\.server|jupyter)\b"
)


def test_every_server_command_in_the_makefile_binds_localhost():
    lines = [line.strip() for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("\t")]
    for line in [line for line in lines if SERVER_COMMANDS.search(line)]:
        assert re.search(r"(--host|-h)[ =]127\.0\.0\.1\b", line), f"binds beyond localhost: {line}"
        assert "0.0.0.0" not in line and "::" not in line
    assert "tunedag ui" in lines, "make ui starts the MLflow UI through `tunedag ui` (its sockets: the next test)"


def test_tunedag_ui_listens_on_localhost_only(project):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [str(BIN / "tunedag"), "ui", "--port", str(port)],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline, sockets = time.time() + 120, set()
        while not any(p == port for _, _, p in sockets):
            assert proc.poll() is None and time.time() < deadline, "tunedag ui never listened"
            time.sleep(0.5)
            sockets = _listening(proc.pid)
        tree = [" ".join(p.cmdline()) for p in psutil.Process(proc.pid).children(recursive=True)]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
    assert {ip for _, ip, _ in sockets} <= LOCALHOST, sockets
    assert not [c for c in tree if "huey" in c or "_job_runner" in c], tree  # no MLflow job runner for a UI


def test_no_code_binds_every_interface():
    for folder in ("flows", "tasks", "tunedag", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "0.0.0.0" not in text and '"::"' not in text, f"{path} binds every interface"


def _listening(root: int) -> set[tuple[int, str, int]]:
    """(pid, address, port) of every listening socket of process `root` and its descendants."""
    found = set()
    try:
        tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in tree:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {(proc.pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return found


LOCALHOST = {"127.0.0.1", "::1"}


def test_the_temporary_prefect_server_of_a_stage_run_listens_on_localhost_only(tmp_path):
    """A flow run with no PREFECT_API_URL (`make pipeline`, `dvc repro`) starts its own server."""
    go = tmp_path / "go"
    (tmp_path / "prefect.toml").write_bytes((REPO / "prefect.toml").read_bytes())  # the project's settings
    script = (
        "import pathlib, time\nfrom prefect import flow\n@flow\ndef probe():\n    print('ready', flush=True)\n"
        f"    while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.2)\nprobe()\n"
    )
    env = {k: v for k, v in subprocess_env().items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.strip() == "ready":
                break
        assert proc.poll() is None, "".join(seen)[-3000:]
        sockets = _listening(proc.pid)
    finally:
        go.touch()
        proc.communicate(timeout=60)
    assert sockets, "the temporary server listens"
    assert {ip for _, ip, _ in sockets} <= LOCALHOST, sockets


def test_the_local_dask_cluster_listens_on_localhost_only(make_config):
    from runners.starting import runner_for

    cfg = make_config(**{"tune.runner": {"kind": "dask"}, "tune.parallelism": 1})
    before = _listening(os.getpid())  # the session's Prefect test server among them
    with runner_for(cfg):  # the LocalCluster starts with the runner
        new = _listening(os.getpid()) - before
    assert new, "the scheduler and its worker listen"
    assert {ip for _, ip, _ in new} <= LOCALHOST, new


# --- 11. the DVC lock: a second `dvc repro` while one runs is refused, nothing is corrupted ------------


def test_a_second_dvc_repro_while_one_runs_is_refused_and_the_first_completes(tmp_path):
    project = _clone(tmp_path)
    set_params(project, {"tune.n_trials": 4})
    env = {**subprocess_env(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        # Up to the tune stage only: the lock is the point, the later stages would only add minutes.
        first = subprocess.Popen(["dvc", "repro", "tune"], cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while "Running stage 'tune'" not in log.read_text():
                assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            second = run(project, "dvc", "repro", timeout=120)
            assert first.poll() is None, "the second ran while the first was still running"
        finally:
            first.wait(timeout=600)

    assert second.returncode != 0
    message = second.stdout + second.stderr
    assert "Unable to acquire lock" in message or "is busy, it is being blocked by" in message, message
    assert first.returncode == 0, log.read_text()[-3000:]
    assert "Data and pipelines are up to date" in ok(project, "dvc", "status", "tune")
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert {"prepare", "tune"} <= set(lock["stages"])  # parsed whole; `dvc status tune` above compared it with the files
    rwlock = json.loads((project / ".dvc" / "tmp" / "rwlock").read_text())
    assert not rwlock.get("read") and not rwlock.get("write"), rwlock
