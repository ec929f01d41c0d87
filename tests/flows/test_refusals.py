"""Hostile and careless input, one table: each case is refused in one paragraph, runs none of its code, writes nothing.

Most cases go through the config loader and the stage's own check in-process (`flows._cli.execute`, as a
stage command starts); a dozen run the real `tunedag` command in a subprocess. Each asserts exit
code 2, a message naming the key or file (one line, under 1,000 characters, no traceback), that
no code from the input ran (the marker file its module or class would write is absent) and that
the project holds the same files as before (no new study, run, model or file).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml

from flows._cli import execute
from tests.flows.conftest import REPO
from tests.support.hostile import MARKER_ENV, Tripwire
from tunedag.config import Config
from tunedag.paths import MARKER as OUTPUT_MARKER

SECRET = "s3cr3t-Pa55w0rd-q7"
MARKER = "PWNED"  # what every hostile module or class in these cases writes, in the project
BIN = Path(sys.executable).parent

EVIL_MOD = f"""
from pathlib import Path
Path(__file__).with_name({MARKER!r}).write_text("evil_mod was imported")
class Forest:
    pass
def train(params, data, reporter):
    return {{"accuracy": 1.0}}
def build(n_in, n_out):
    return None
"""


# --- what a case writes into the project before the command runs ----------------------------------


def evil_module(project: Path) -> None:
    (project / "evil_mod.py").write_text(EVIL_MOD)


def append_params(text: str) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        with open(project / "params.yaml", "a", encoding="utf-8") as fh:
            fh.write(text)

    return setup


def replace_in_params(old: str, new: str) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        text = (project / "params.yaml").read_text()
        assert old in text
        (project / "params.yaml").write_text(text.replace(old, new, 1))

    return setup


def alias_bomb(project: Path) -> None:
    levels = "abcdefghi"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip(levels, levels[1:])]
    text = "\n".join(lines) + "\n"
    assert len(text) < 800
    (project / "params.yaml").write_text((project / "params.yaml").read_text() + "\n" + text)


def utf16(project: Path) -> None:
    path = project / "params.yaml"
    path.write_bytes(path.read_text().encode("utf-16"))


def latin1_byte(project: Path) -> None:
    path = project / "params.yaml"
    path.write_bytes(path.read_bytes().replace(b"# tunedag configuration", b"# tunedag configuration \xe9t\xe9", 1))


def params_dir(project: Path) -> None:
    (project / "params.yaml").unlink()
    (project / "params.yaml").mkdir()


def params_fifo(project: Path) -> None:
    (project / "params.yaml").unlink()
    os.mkfifo(project / "params.yaml")


def csv(text: str, name: str = "data/raw/bad.csv") -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        (project / name).write_text(text)

    return setup


def _rows(n: int = 60, stray: str | None = None) -> str:
    rows = [f"{i % 7},{i * 0.5},{i % 2}" for i in range(n)]
    if stray:
        rows[17] = f"3,{stray},1"
    return "\n".join(rows) + "\n"


def data_fifo(project: Path) -> None:
    os.mkfifo(project / "data/raw/bad.csv")


def data_dir(project: Path) -> None:
    (project / "data/raw/bad.csv").mkdir()


def data_zero(project: Path) -> None:
    (project / "data/raw/bad.csv").symlink_to("/dev/zero")


def crafted_model(serialization: str) -> Callable[[Path], None]:
    """A model folder whose MLmodel lists an untrusted class (Tripwire) as trusted: loading it as MLflow does runs it."""

    def setup(project: Path) -> None:
        folder = project / "crafted"
        folder.mkdir()
        (folder / OUTPUT_MARKER).write_text("")  # passes the output-folder check: the loader itself must refuse it
        if serialization == "skops":
            from modelio.skops_io import skops_io

            skops_io.dump(Tripwire(), folder / "model.skops")
            name = "model.skops"
        else:
            import pickle

            (folder / "model.pkl").write_bytes(pickle.dumps(Tripwire()))
            name = "model.pkl"
        flavor = {
            "pickled_model": name,
            "serialization_format": serialization,
            "sklearn_version": "1.9.0",
            "skops_trusted_types": ["tests.support.hostile.Tripwire"],
            "code": None,
        }
        (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": flavor}}))

    return setup


def crafted_torch_model(project: Path) -> None:
    """A PyTorch model folder holding a pickled module (model.pth) of an untrusted class: MLflow's loader unpickles it."""
    import torch

    folder = project / "crafted"
    (folder / "data").mkdir(parents=True)
    (folder / OUTPUT_MARKER).write_text("")
    torch.save(Tripwire(), folder / "data" / "model.pth")
    (folder / "data" / "pickle_module_info.txt").write_text("pickle")
    flavor = {"model_data": "data", "pytorch_version": str(torch.__version__), "code": None}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"pytorch": flavor}}))


# --- the stage checks run after the config loads (as the stage would, before writing anything) ------


def prepare_check(cfg: Config) -> None:
    from tunedag.data import load_source, prepare

    frame, target = load_source(cfg.data, cfg.seed)
    prepare(frame, target, cfg.data, cfg.seed, f"{cfg.data.path} (data.path)")


def evaluate_check(cfg: Config) -> None:
    from tasks.evaluation import load_final_model

    load_final_model(cfg.paths.model_dir, cfg.model.trusted_types)


def tracking_check(cfg: Config) -> None:
    from services.reach import check_reachable

    check_reachable(cfg.tracking.uri, "tracking.uri")


FILE_DATA = ["data.source=file", "data.name=null", "data.path=data/raw/bad.csv", "data.target=y"]


@dataclass(frozen=True)
class Case:
    id: str
    sets: list[str]
    names: list[str]  # the message names each (the key or the file)
    setup: Callable[[Path], None] | None = None
    check: Callable[[Config], None] | None = None
    command: str = "tune"  # the stage command, when the case runs as a subprocess too
    absent: list[str] = field(default_factory=list)  # text the output must not hold


CASES = [
    # code that would run: import paths are checked as strings before anything is imported
    Case("estimator-local-module", ["model.estimator=evil_mod.Forest"], ["model.estimator", "evil_mod"], evil_module),
    Case("estimator-this", ["model.estimator=this.Forest"], ["model.estimator", "'this'"], absent=["Beautiful is better"]),
    Case("estimator-subprocess", ["model.estimator=subprocess.Popen"], ["model.estimator", "subprocess"]),
    Case("estimator-json", ["model.estimator=json.JSONDecoder"], ["model.estimator", "json"]),
    Case("estimator-function", ["model.estimator=sklearn.base.clone"], ["model.estimator", "sklearn.base.clone"]),
    Case("train-fn-os-system", ["model.estimator=null", "model.fixed={}", "model.train_fn=os:system"], ["train_fn", "os:system"]),
    Case(
        "train-fn-eval", ["model.estimator=null", "model.fixed={}", "model.train_fn=builtins:eval"], ["train_fn", "builtins:eval"]
    ),
    Case(
        "train-fn-exec", ["model.estimator=null", "model.fixed={}", "model.train_fn=builtins:exec"], ["train_fn", "builtins:exec"]
    ),
    Case(
        "train-fn-rmtree",
        ["model.estimator=null", "model.fixed={}", "model.train_fn=shutil:rmtree"],
        ["train_fn", "shutil:rmtree"],
    ),
    Case(
        "train-fn-local-module",
        ["model.estimator=null", "model.fixed={}", "model.train_fn=evil_mod:train"],
        ["train_fn", "evil_mod"],
        evil_module,
    ),
    Case(
        "train-fn-signature",
        ["model.estimator=null", "model.fixed={}", "model.train_fn=sklearn.base:clone"],
        ["train_fn", "(params, data, reporter)"],
    ),
    Case(
        "allowed-modules-os",
        ["model.allowed_modules=[os]", "model.estimator=null", "model.fixed={}", "model.train_fn=os:system"],
        ["model.allowed_modules", "'os'"],
    ),
    Case(
        "family-local-module",
        [
            "model.estimator=null",
            "model.fixed={}",
            "search_space={}",
            "model.families={a: {estimator: evil_mod.Forest, search_space: {x: {type: int, low: 1, high: 2}}}}",
        ],
        ["model.families.a.estimator", "evil_mod"],
        evil_module,
    ),
    Case(
        "module-factory-local-module",
        [
            "model.estimator=tunedag.nets.TorchClassifier",
            "model.fixed={module_factory: 'evil_mod:build'}",
            "search_space={lr: {type: float, low: 0.001, high: 0.1}}",
        ],
        ["model.fixed.module_factory", "evil_mod"],
        evil_module,
    ),
    # careless config
    Case("duplicate-section", [], ["params.yaml", "'tune'", "lines"], append_params("\ntune:\n  metric: accuracy\n")),
    Case(
        "duplicate-nested-key",
        [],
        ["params.yaml", "'max_depth'", "lines"],
        replace_in_params("search_space:\n", "search_space:\n  max_depth: {type: int, low: 3, high: 4}\n"),
    ),
    Case("alias-bomb", [], ["params.yaml", "aliases expand"], alias_bomb),
    Case("n-trials-true", ["tune.n_trials=true"], ["tune.n_trials", "--set"]),
    Case("seed-true", ["seed=true"], ["seed"]),
    Case("parallelism-false", ["tune.parallelism=false"], ["tune.parallelism"]),
    Case("timeout-true", ["tune.timeout=true"], ["tune.timeout"]),
    Case("bound-nan", ["search_space.ccp_alpha={type: float, low: .nan, high: 0.1}"], ["search_space.ccp_alpha.low", "finite"]),
    Case("bound-inf", ["search_space.ccp_alpha={type: float, low: 0.0, high: .inf}"], ["search_space.ccp_alpha.high", "finite"]),
    Case("bound-minus-inf", ["search_space.ccp_alpha={type: float, low: -.inf, high: 0.1}"], ["search_space.ccp_alpha.low"]),
    Case("params-utf16", [], ["params.yaml", "UTF-8"], utf16),
    Case("params-latin1", [], ["params.yaml", "UTF-8"], latin1_byte),
    Case("params-directory", [], ["params.yaml", "not a regular file"], params_dir),
    Case("params-fifo", [], ["params.yaml", "not a regular file"], params_fifo),
    Case(
        "params-python-tag",
        [],
        ["params.yaml", "not valid YAML"],
        append_params(f"\nevil: !!python/object/apply:os.system ['touch {MARKER}']\n"),
    ),
    Case("set-invalid-yaml", ["tune.n_trials=[1,"], ["--set tune.n_trials", "not valid YAML"], absent=["params.yaml is invalid"]),
    Case(
        "set-python-tag",
        [f"tune.n_trials=!!python/object/apply:os.system ['touch {MARKER}']"],
        ["--set tune.n_trials"],
        absent=["params.yaml is invalid"],
    ),
    Case("set-wrong-type", ["tune.n_trials=abc"], ["--set tune.n_trials"]),
    Case("set-no-equals", ["tune.n_trials"], ["--set", "section.key=value"]),
    Case("set-huge-value", ["tune.metric=" + "x-" * 20_000], ["tune.metric"]),
    # wrong data, refused at prepare
    Case(
        "data-duplicate-target",
        FILE_DATA,
        ["bad.csv", "data.path", "'y'"],
        csv("x,z,y,y\n" + "\n".join(f"{i % 7},{i * 0.5},{i % 2},{i % 2}" for i in range(60))),
        prepare_check,
        "prepare",
    ),
    Case(
        "data-target-split",
        [*FILE_DATA[:3], "data.target=__split__"],
        ["bad.csv", "data.target", "__split__"],
        csv("x,z,__split__\n" + _rows()),
        prepare_check,
    ),
    Case("data-feature-split", FILE_DATA, ["bad.csv", "__split__"], csv("x,__split__,y\n" + _rows()), prepare_check),
    Case(
        "data-stray-string",
        FILE_DATA,
        ["bad.csv", "'z'", "row 18", "data.on_bad_numbers"],
        csv("x,z,y\n" + _rows(stray="oops")),
        prepare_check,
    ),
    Case("data-fifo", FILE_DATA, ["bad.csv", "data.path", "FIFO"], data_fifo, prepare_check, "prepare"),
    Case("data-directory", FILE_DATA, ["bad.csv", "data.path", "directory"], data_dir, prepare_check, "prepare"),
    Case(
        "data-dev-zero", FILE_DATA, ["bad.csv", "data.path", "/dev/zero", "character device"], data_zero, prepare_check, "prepare"
    ),
    # models load only reviewed types, whatever the folder's MLmodel lists
    Case(
        "model-untrusted-class",
        ["paths.model_dir=crafted"],
        ["crafted", "tests.support.hostile.Tripwire", "model.trusted_types"],
        crafted_model("skops"),
        evaluate_check,
    ),
    Case("model-pickle", ["paths.model_dir=crafted"], ["crafted", "skops"], crafted_model("cloudpickle"), evaluate_check),
    Case("model-torch-pickle", ["paths.model_dir=crafted"], ["crafted", "model.pth"], crafted_torch_model, evaluate_check),
    # an unreachable database: one attempt, no password
    Case(
        "tracking-unreachable",
        [f"tracking.uri=postgresql://bob:{SECRET}@127.0.0.1:1/x"],
        ["tracking.uri", "127.0.0.1:1"],
        None,
        tracking_check,
        absent=[SECRET],
    ),
    # an unreachable tracking server: refused before the registry check asks it (and MLflow retries for minutes)
    Case(
        "tracking-server-unreachable",
        [f"tracking.uri=http://bob:{SECRET}@127.0.0.1:1"],
        ["tracking.uri", "127.0.0.1:1", "tracking server"],
        None,
        tracking_check,
        absent=[SECRET],
    ),
]

# the dozen that also run as the real command
COMMAND_CASES = {
    "estimator-local-module",
    "estimator-this",
    "train-fn-os-system",
    "duplicate-section",
    "alias-bomb",
    "n-trials-true",
    "bound-nan",
    "params-utf16",
    "set-invalid-yaml",
    "set-python-tag",
    "data-duplicate-target",
    "data-fifo",
    "data-dev-zero",
    "tracking-unreachable",
    "tracking-server-unreachable",
}


def listing(root: Path) -> dict[str, str]:
    """Every path under the project with what it holds: a file's SHA-256, a link's target, another entry's kind.

    Equal listings before and after a command mean it created, changed and deleted nothing in the
    project (a FIFO or device is not read).
    """
    out = {}
    for p in root.rglob("*"):
        if "__pycache__" in p.parts:
            continue
        mode = p.lstat().st_mode
        if stat.S_ISLNK(mode):
            out[str(p.relative_to(root))] = f"link to {os.readlink(p)}"
        elif stat.S_ISREG(mode):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p.relative_to(root))] = stat.filemode(mode)
    return out


def test_the_listing_sees_a_file_changed_in_place_created_or_deleted(tmp_path) -> None:
    (tmp_path / "a").write_text("abc")
    before = listing(tmp_path)
    (tmp_path / "a").write_text("abd")  # same size, other bytes
    assert listing(tmp_path) != before
    (tmp_path / "a").write_text("abc")
    assert listing(tmp_path) == before
    (tmp_path / "new").touch()
    assert listing(tmp_path) != before


def assert_one_paragraph(case: Case, code: int, out: str, err: str, project: Path) -> str:
    assert code == 2, f"exit {code}\n{out[-2000:]}\n{err[-3000:]}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tunedag: error: "), err[-3000:]
    message = lines[0].removeprefix("tunedag: error: ")
    assert len(message) < 1000, len(message)
    assert "Traceback" not in out + err
    for name in case.names:
        assert name in message, (name, message)
    for text in case.absent:
        assert text not in out + err, text
    assert not (project / MARKER).exists(), "code from the input ran"
    return message


def _never_run(cfg) -> None:
    raise AssertionError("a refused input reached the stage")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_in_process(case: Case, project: Path, capsys, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(project))  # importable, as a clone's own modules are for `tunedag` (its editable install)
    monkeypatch.setenv(MARKER_ENV, str(project / MARKER))
    monkeypatch.delenv("TUNEDAG_ALLOWED_MODULES", raising=False)  # only the defaults and what the config lists
    had_this = "this" in sys.modules
    if case.setup:
        case.setup(project)
    before = listing(project)
    code = execute(_never_run, "params.yaml", case.sets, check=case.check)
    captured = capsys.readouterr()
    assert_one_paragraph(case, code, captured.out, captured.err, project)
    assert "evil_mod" not in sys.modules and ("this" in sys.modules) == had_this
    assert listing(project) == before


def test_the_table_holds_forty_cases_and_the_crafted_model_would_run_as_mlflow_loads_it(project, monkeypatch) -> None:
    """The table is as large as promised, and its crafted model is a real threat: MLflow's own loader runs its class."""
    import mlflow.sklearn

    assert len(CASES) >= 40 and len(COMMAND_CASES) >= 12 and COMMAND_CASES <= {c.id for c in CASES}
    monkeypatch.setenv(MARKER_ENV, str(project / MARKER))
    crafted_model("skops")(project)
    mlflow.sklearn.load_model(str(project / "crafted"))
    assert (project / MARKER).exists()


def test_coerce_reads_stray_strings_as_missing_with_a_warning(project, caplog, monkeypatch) -> None:
    from tunedag.config import load_config

    csv("x,z,y\n" + _rows(stray="oops"))(project)
    cfg = load_config(
        "params.yaml", {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in FILE_DATA)} | {"data.on_bad_numbers": "coerce"}
    )
    from tunedag.data import load_source, prepare

    prep = prepare(*load_source(cfg.data, cfg.seed), cfg.data, cfg.seed, "bad.csv")
    assert "z" in prep.numeric and prep.frame["z"].isna().sum() == 1
    assert "'z'" in caplog.text and "row 18" in caplog.text


def test_an_allowed_module_is_imported_only_when_listed(project, monkeypatch) -> None:
    """model.allowed_modules opens a module the user trusts; the same path without it is refused."""
    from tunedag.config import load_config
    from tunedag.errors import ConfigError

    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delenv("TUNEDAG_ALLOWED_MODULES", raising=False)
    (project / "mine.py").write_text("def train(params, data, reporter):\n    return {'accuracy': 1.0}\n")
    sets = {"model.estimator": None, "model.fixed": {}, "model.train_fn": "mine:train"}
    with pytest.raises(ConfigError, match="model.allowed_modules"):
        load_config("params.yaml", sets)
    assert "mine" not in sys.modules
    cfg = load_config("params.yaml", sets | {"model.allowed_modules": ["mine"]})
    assert cfg.model.train_fn == "mine:train" and "mine" in sys.modules
    sys.modules.pop("mine")


# --- the real command -----------------------------------------------------------------------------


def command_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TUNEDAG_ALLOWED_MODULES"}
    # Refusals come before Prefect is needed: an address nothing answers on keeps the command from starting a server.
    return env | {
        "PYTHONPATH": str(REPO),
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        MARKER_ENV: str(project / MARKER),
        "PATH": f"{BIN}{os.pathsep}{env['PATH']}",
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.id in COMMAND_CASES], ids=lambda c: c.id)
def test_refused_by_the_command(case: Case, project: Path, tmp_path_factory) -> None:
    """The real command: one paragraph, and nothing created or changed in the project or in the user's home."""
    home = tmp_path_factory.mktemp("home")  # where Prefect, MLflow and caches would write outside the project
    if case.setup:
        case.setup(project)
    before = listing(project)
    argv = [str(BIN / "tunedag"), case.command, *(a for s in case.sets for a in ("--set", s))]
    env = command_env(project) | {"HOME": str(home)}
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert_one_paragraph(case, done.returncode, done.stdout, done.stderr, project)
    assert listing(project) == before
    assert listing(home) == {}


# --- tunedag ui -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the MLflow UI did not start")


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_tunedag_ui_hides_the_store_password_and_stops_its_server(project: Path, stop: str) -> None:
    """The store URI is in no command line and no output; Ctrl-C is quiet, and SIGTERM leaves no server behind."""
    port = _free_port()
    uri = f"sqlite:///mlruns/ui.db?password={SECRET}"  # a secret in the URI the way a database URI carries one
    replace_in_params("uri: sqlite:///mlruns/mlflow.db", f"uri: {uri}")(project)  # in the file, as a user keeps it
    proc = subprocess.Popen(
        [str(BIN / "tunedag"), "ui", "--port", str(port)],
        cwd=project,
        env=command_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_listening(port, proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children
        for p in [psutil.Process(proc.pid), *children]:
            assert SECRET not in " ".join(p.cmdline())
        if stop == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # the terminal sends Ctrl-C to the foreground group: tunedag, not its server
        else:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert SECRET not in out + err and "Traceback" not in out + err and "finished trials" not in err, out + err
    time.sleep(1)
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_tunedag_ui_refuses_a_used_port_an_unreachable_database_and_prints_no_password(project: Path) -> None:
    env = command_env(project)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "tunedag"), "ui", "--port", str(port)], cwd=project, env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 2 and f"--port {port}" in done.stderr and "Traceback" not in done.stderr
    started = time.monotonic()
    done = subprocess.run(
        [str(BIN / "tunedag"), "ui", "--set", f"tracking.uri=postgresql://bob:{SECRET}@127.0.0.1:1/x"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "tracking.uri" in done.stderr and time.monotonic() - started < 60
    done2 = subprocess.run(
        [str(BIN / "tunedag"), "ui", "--set", f"tracking.uri=http://bob:{SECRET}@127.0.0.1:1"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done2.returncode == 0 and "http://bob:***@127.0.0.1:1" in done2.stdout
    for d in (done, done2):
        assert SECRET not in d.stdout + d.stderr


def test_a_model_tunedag_saved_loads_and_predicts_as_before(tmp_path) -> None:
    """The reviewed types cover what tunedag saves: a preprocessing pipeline with a forest loads and predicts the same."""
    from types import SimpleNamespace

    from sklearn.datasets import load_iris

    from modelio.mlflow_models import save_sklearn_model
    from modelio.trust import skops_trusted_types
    from tasks.evaluation import load_final_model
    from tunedag.estimators import build_model

    X, y = load_iris(return_X_y=True, as_frame=True)
    X["colour"] = ["red", "green", "blue"] * 50
    preprocess = SimpleNamespace(numeric_impute="median", scale=True, max_categories=20)
    model = build_model(
        "sklearn.ensemble.RandomForestClassifier",
        {"n_estimators": 5, "random_state": 0},
        {},
        list(X.columns[:4]),
        ["colour"],
        preprocess,
    ).fit(X, y)
    save_sklearn_model(model, tmp_path / "model", skops_trusted_types(model))
    loaded = load_final_model(tmp_path / "model")
    assert (loaded.predict(X) == model.predict(X)).all()


@pytest.mark.slow
def test_the_command_does_not_put_the_project_folder_on_the_import_path(project: Path) -> None:
    """Even a module the config allows is not imported from the working directory by `tunedag`: it must be installed."""
    evil_module(project)
    before = listing(project)
    argv = [str(BIN / "tunedag"), "tune", "--set", "model.allowed_modules=[evil_mod]", "--set", "model.estimator=evil_mod.Forest"]
    done = subprocess.run(argv, cwd=project, env=command_env(project), capture_output=True, text=True, timeout=300)
    case = Case("allowed-but-not-on-path", [], ["model.estimator", "evil_mod", "cannot be imported"])
    assert_one_paragraph(case, done.returncode, done.stdout, done.stderr, project)
    assert listing(project) == before
