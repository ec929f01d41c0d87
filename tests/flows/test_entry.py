"""The stage commands' shared entry (flows._cli): config and input checks before the flow's imports, refusals in one paragraph."""

from __future__ import annotations

import logging

import pytest

from flows import _cli
from flows._inputs import tune_summary
from tunedag.errors import ConfigError, TunedagError


def test_the_config_is_loaded_once_with_the_overrides_and_the_run_gets_it(project):
    ran = []
    assert _cli.execute(ran.append, "params.yaml", ["tune.n_trials=7"]) == 0
    assert len(ran) == 1 and ran[0].tune.n_trials == 7


def test_a_config_that_does_not_validate_is_refused_before_the_flows_module_is_imported(project, capsys):
    """The flow's module does not exist here: importing it would fail otherwise than with the one paragraph."""
    assert _cli.execute("flows.no_such_stage:run", "params.yaml", ["model.estimator=sklearn.nope.Thing"]) == 2
    assert capsys.readouterr().err.startswith("tunedag: error: params.yaml is invalid: model.estimator")


def test_a_missing_stage_input_is_refused_before_the_flows_module_is_imported(project, capsys):
    """`tunedag train` before any tune: refused on the missing tune summary, not after the flow's imports."""
    assert _cli.execute("flows.no_such_stage:run", "params.yaml", [], check=tune_summary) == 2
    assert "(paths.tune_summary) is missing" in capsys.readouterr().err


def test_the_flow_is_imported_and_run_by_name_once_the_checks_pass(project, monkeypatch):
    import flows.prepare

    ran = []
    monkeypatch.setattr(flows.prepare, "prepare_flow", ran.append)
    assert _cli.execute("flows.prepare:prepare_flow", "params.yaml", []) == 0
    assert len(ran) == 1


def test_an_api_in_the_environment_or_in_prefects_settings_is_used_and_no_project_server_started(project, monkeypatch):
    """The tests' session server (tests/flows/conftest.py) is named in Prefect's settings only; a user's, in the environment."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    seen = []
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert _cli.execute(seen.append, "params.yaml", [], prefect_api=True) == 0
    monkeypatch.delenv("PREFECT_API_URL")
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:8/api"}):
        assert _cli.execute(lambda cfg: seen.append(PREFECT_API_URL.value()), "params.yaml", [], prefect_api=True) == 0
    assert len(seen) == 2 and seen[1] == "http://127.0.0.1:8/api"
    assert not (project / ".tunedag").exists(), "no project server was leased"


def _record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, msg, (), exc_info)


def test_a_refusal_raised_in_a_run_drops_prefects_traceback_and_state_line_and_nothing_else():
    refusals = _cli.RefusalFilter()

    assert not refusals.filter(_record("Encountered exception during execution: %r", ConfigError("data.target 'y' is missing")))
    assert not refusals.filter(_record("Finished in state Failed('Flow run encountered an exception: ConfigError: data.target')"))
    assert refusals.filter(_record("Finished in state Failed('Flow run encountered an exception: ValueError: boom')"))
    assert refusals.filter(_record("Encountered exception during execution: %r", ValueError("a bug keeps its traceback")))
    assert refusals.filter(_record("Finished in state Completed()"))


def test_quiet_refusals_filters_prefects_run_loggers_for_the_block_only():
    logger = logging.getLogger("prefect.task_runs")
    with _cli.quiet_refusals():
        assert any(isinstance(f, _cli.RefusalFilter) for f in logger.filters)
    assert not any(isinstance(f, _cli.RefusalFilter) for f in logger.filters)
    with _cli.quiet_refusals(enabled=False):  # --debug
        assert not any(isinstance(f, _cli.RefusalFilter) for f in logger.filters)


def test_debug_prints_the_traceback_above_the_paragraph(capsys):
    try:
        raise TunedagError("data.path 'x.csv' does not exist")
    except TunedagError as exc:
        assert _cli.refuse(exc, debug=True) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.rstrip().splitlines()[-1] == "tunedag: error: data.path 'x.csv' does not exist"


def test_the_tunedag_command_imports_neither_prefect_nor_mlflow_nor_sklearn_before_it_runs_one():
    """`tunedag --help` answers at once, and a bad config is refused before the heavy imports."""
    import json
    import subprocess
    import sys

    code = "import sys, json, flows.cli; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'mlflow', 'sklearn', 'optuna'})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_a_trial_flow_gets_the_runner_started_before_its_module_is_imported_and_closed_cancelling_on_a_refusal(
    project, monkeypatch, capsys
):
    """`tunedag tune` / `worker`: the trial workers start once the checks pass, while the flow's module is imported."""
    import sys
    from contextlib import contextmanager

    events = []

    @contextmanager
    def start_runner(cfg):
        events.append("runner started")
        try:
            yield "the runner's future"
        except BaseException as exc:
            events.append(f"closed on {type(exc).__name__}")
            raise

    class Flow:  # a flow module: importing it is an event
        def __getattr__(self, name):
            if name != "run":
                raise AttributeError(name)
            events.append("flow module imported")
            return lambda cfg, runner: (events.append(runner), (_ for _ in ()).throw(TunedagError("refused in the flow")))

    monkeypatch.setattr("runners.starting.start_runner", start_runner)
    monkeypatch.setitem(sys.modules, "flows.probe_stage", Flow())
    assert _cli.execute("flows.probe_stage:run", "params.yaml", [], trial_runner=True) == 2
    assert events == ["runner started", "flow module imported", "the runner's future", "closed on TunedagError"]
    assert "refused in the flow" in capsys.readouterr().err
    events.clear()
    assert _cli.execute("flows.probe_stage:run", "params.yaml", ["model.estimator=sklearn.nope.Thing"], trial_runner=True) == 2
    assert events == [], "bad input: no runner started"


class _Leased:
    """What `_point_prefect_at` reads of a `services.prefect_api.Lease` on a project server already up."""

    started, idle_s = False, 120.0

    def __init__(self, url: str) -> None:
        self.url = url

    def wait(self) -> str:
        return self.url


@pytest.mark.slow
def test_flow_runs_on_the_project_server_send_no_heartbeats_unless_prefects_settings_ask(prefect_server, monkeypatch):
    """Prefect's heartbeat thread makes each flow run end up to a second late; the project's own server needs none."""
    from prefect import flow
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import Settings, get_current_settings

    @flow
    def probe() -> tuple[str, int | None]:
        settings = get_current_settings()
        return settings.api.url, settings.flows.heartbeat_frequency

    def command(env: dict[str, str]) -> tuple[str, int | None]:
        """`probe` as a stage command runs it: Prefect's settings read afresh from the environment, on a leased server."""
        for name in ("PREFECT_API_URL", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with SettingsContext(profile=get_settings_context().profile, settings=Settings()), _cli._point_prefect_at(leased):
            return probe()

    leased = _Leased(url := get_current_settings().api.url)  # the tests' session server, standing in for the project's
    assert command({}) == (url, None)
    assert command({"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "60"}) == (url, 60), "the user's choice stands"
    assert command({"PREFECT_API_URL": url}) == (url, 180), "a server the user names keeps Prefect's default"
