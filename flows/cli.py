"""`tunedag`: one command for every stage, the whole pipeline, its schedule, the UI and a status line.

Every command reads `--params` (default params.yaml) with `--set key=value` overrides, validates
the config once, and exits 0 on success, 2 on bad input (one paragraph naming the key or file),
130 when interrupted.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from flows._cli import TRIAL_FLOWS, execute, handling
from flows._inputs import CHECKS

HELP = (
    "One command for every stage, the whole pipeline, its schedule, the MLflow UI and a status. Every command "
    "reads --params (default params.yaml) with --set KEY=VALUE overrides and validates the config once; exit 0 on "
    "success, 2 on bad input (one paragraph naming the key or file), 130 when interrupted."
)
app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

Params = Annotated[str, typer.Option("--params", "-p", help="the config file")]
Overrides = Annotated[
    list[str], typer.Option("--set", "-s", metavar="KEY=VALUE", help="override one key, e.g. --set tune.n_trials=50 (repeatable)")
]


# MLflow's server runs a job runner for its GenAI jobs (about 8 processes, 1.4 GB, 14 s of CPU at start);
# tunedag starts none, so the UI runs without it unless the environment says otherwise.
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

# The flows that take the validated config and nothing else: command -> (module, function, help).
FLOW_COMMANDS = {
    "run": (
        "flows.pipeline",
        "pipeline_flow",
        "The whole pipeline in one Prefect flow run: prepare, plan, tune, train, evaluate and promote, report.",
    ),
    "prepare": ("flows.prepare", "prepare_flow", "Stage 1: read the data source and write the train / val / test splits."),
    "tune": ("flows.tune", "run", "Stage 2: the Optuna study, one Prefect task per trial, each trial an MLflow run."),
    "train": ("flows.train", "train_flow", "Stage 3: refit the chosen configuration on train + validation and register it."),
    "evaluate": (
        "flows.evaluate",
        "evaluate_flow",
        "Stage 4: score the final model on the test split; move `champion` only to a better version.",
    ),
    "report": ("flows.report", "run", "Stage 5: the study report (figures, DVC plots, reports/study/index.html)."),
    "worker": ("flows.worker", "run", "Join the running study (same params.yaml) and run its trials until the budget is used."),
}


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback of a refusal (bad input), and Prefect's report of a run it failed")
    ] = False,
) -> None:
    """Options for every command (before the command's name: `tunedag --debug tune`)."""


def _debug(ctx: typer.Context) -> bool:
    """Whether `tunedag --debug` was given."""
    return bool(ctx.find_root().params.get("debug"))


def _flow_command(module: str, name: str):
    """A command that loads and checks the config, then imports the flow and runs it on the project's Prefect API.

    The flow's module is imported only once the config and the stage's inputs (flows._inputs) passed:
    a fast --help, and bad input refused in about 2 s.
    """

    def command(ctx: typer.Context, params: Params = "params.yaml", overrides: Overrides = None) -> None:
        raise typer.Exit(
            execute(
                f"{module}:{name}",
                params,
                overrides or [],
                check=CHECKS.get(module),
                debug=_debug(ctx),
                prefect_api=True,
                trial_runner=module in TRIAL_FLOWS,
            )
        )

    return command


for _name, (_module, _function, _help) in FLOW_COMMANDS.items():
    app.command(_name, help=_help)(_flow_command(_module, _function))


@app.command()
def serve(ctx: typer.Context, params: Params = "params.yaml", overrides: Overrides = None) -> None:
    """Serve the pipeline as a Prefect deployment on the cron schedule of `schedule` in params.yaml (blocks).

    Each scheduled run reads params.yaml again, so edits apply to the next run.
    """

    def start(cfg) -> None:
        from flows.schedule import serve_pipeline

        serve_pipeline(cfg, params, overrides or [])

    raise typer.Exit(execute(start, params, overrides or [], debug=_debug(ctx), prefect_api=True))


@app.command()
def deploy(
    ctx: typer.Context,
    pool: Annotated[str, typer.Option("--pool", help="the Prefect work pool (type process) that runs it")],
    params: Params = "params.yaml",
    overrides: Overrides = None,
) -> None:
    """Register the scheduled pipeline with a Prefect server's work pool; `prefect worker start --pool NAME` runs it."""

    def register(cfg) -> None:
        from flows.schedule import deploy_pipeline

        print(f"tunedag: deployment {deploy_pipeline(cfg, params, overrides or [], pool)} registered on work pool {pool}")

    raise typer.Exit(execute(register, params, overrides or [], debug=_debug(ctx)))


@app.command()
def ui(
    params: Params = "params.yaml",
    overrides: Overrides = None,
    port: Annotated[int, typer.Option(help="the port on 127.0.0.1")] = 5000,
) -> None:
    """The MLflow UI on the store params.yaml names, on http://127.0.0.1:PORT (Ctrl-C stops it)."""

    def start(cfg) -> None:
        from services.reach import check_reachable
        from tunedag.errors import redact

        uri = cfg.tracking.uri
        if uri.startswith(("http://", "https://")):
            print(f"tunedag: tracking.uri is a server; open {redact(uri)} in a browser")
            return
        check_reachable(uri, "tracking.uri")
        _check_port_free(port)
        raise typer.Exit(_serve_ui(uri, port))

    raise typer.Exit(execute(start, params, overrides or []))


def _check_port_free(port: int) -> None:
    """Refuse a port something listens on already (MLflow's uvicorn then waits instead of failing)."""
    import socket

    from tunedag.errors import TunedagError

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise TunedagError(
                f"--port {port}: 127.0.0.1:{port} cannot be used by the MLflow UI ({exc.strerror}); choose another with --port"
            ) from None


def _serve_ui(uri: str, port: int) -> int:
    """Run `mlflow ui` until it ends or this command is stopped; its exit code, 130 on Ctrl-C (quietly).

    The store URI travels in the child's environment (MLFLOW_BACKEND_STORE_URI), never on a command
    line `ps` shows. The server runs in its own session: Ctrl-C reaches this process only (no uvicorn
    traceback), and on Ctrl-C, SIGTERM, SIGHUP or any exit its whole process group is stopped. Its
    stderr is shown, redacted, only when it fails by itself (a port in use, a store it cannot open).
    """
    import signal
    import tempfile

    from tunedag.errors import redact

    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = UI_ENV | dict(os.environ) | {"MLFLOW_BACKEND_STORE_URI": uri}

    def stop(signum: int, frame) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a process started in the background by a script inherits SIGINT ignored, and then Ctrl-C
    # or `kill -INT` would leave the server running (servers such as uvicorn set it the same way).
    with (
        handling(stop, signal.SIGINT, signal.SIGTERM, signal.SIGHUP),
        tempfile.TemporaryFile(mode="w+", prefix="tunedag-ui-") as log,
    ):
        child = subprocess.Popen(command, env=env, stderr=log, start_new_session=True)
        print(f"tunedag: MLflow UI on http://127.0.0.1:{port} (Ctrl-C stops it)", flush=True)
        try:
            code = child.wait()
        except KeyboardInterrupt:
            return 130
        finally:
            _stop_group(child)
        if code != 0:
            log.seek(0)
            tail = " ".join(log.read()[-4000:].replace(uri, redact(uri)).split())[-600:]
            print(f"tunedag: error: the MLflow UI on port {port} stopped with exit code {code}: {redact(tail)}", file=sys.stderr)
        return code


def _stop_group(child: subprocess.Popen) -> None:
    """Stop the process group `child` leads (the MLflow CLI and its uvicorn): SIGTERM, then SIGKILL after 10 s."""
    import signal
    import time

    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        deadline = time.monotonic() + grace
        try:
            os.killpg(child.pid, sig)
            while time.monotonic() < deadline:
                child.poll()  # reap the leader: the group lives on while uvicorn shuts down
                os.killpg(child.pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            return


@app.command()
def status(ctx: typer.Context, params: Params = "params.yaml", overrides: Overrides = None) -> None:
    """Where things stand: data version, study progress and best trial, last pipeline run, champion and challenger."""

    def show(cfg) -> None:
        from reporting.status import status_lines

        print("\n".join(status_lines(cfg)))

    raise typer.Exit(execute(show, params, overrides or [], debug=_debug(ctx)))


def main() -> None:
    """The console script `tunedag`."""
    try:
        app()
    finally:
        # The interpreter's collections at exit walk every object the imports made (Prefect, MLflow, scikit-learn):
        # 1-3 s of each stage on 2 cores, for nothing that needs collecting. Frozen objects are skipped.
        gc.freeze()


if __name__ == "__main__":
    main()
