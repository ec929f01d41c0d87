"""Per-trial overhead of tunedag, layer by layer, from a bare loop to the full tune flow.

Run from the repository root:

    python benchmarks/overhead.py                         # 300 trials, a trivial and a 5 ms objective
    python benchmarks/overhead.py --cost-ms 500 --trials 100 --layers optuna,pipeline   # ~0.5 s trials
    python benchmarks/overhead.py --cost-ms 0 --layers optuna,pipeline --repeat 3       # 3 runs in turn, summarised

Every layer runs the same objective, `tunedag.objective.evaluate` on iris with
`bench_objectives.SpinClassifier(a, b, cost_ms)` (fit spins the CPU `cost_ms` ms; cost 0 is the
trivial objective), with the same seeded RandomSampler, so all layers see the same parameter
sequence (checked and printed). Layers, each adding one thing to the one above:

  bare loop            a Python loop: sample 2 ints with numpy, evaluate
  optuna (memory)      study.optimize, in-memory storage: the baseline of the overhead
  + journal storage    Optuna JournalStorage file, as tune.storage and tune.journal_sync configure it
  + MLflow run         one child run per trial with params, metrics and tags (the project's calls)
  + model artifact     the worker's model folder (skops, explicit requirements) uploaded to the run
  + worker process     the evaluation and model save in tunedag's process pool (tune.executor: process)
  + Prefect task       the real `run_trial` task, submitted from a Prefect flow, one at a time
  full pipeline        `flows.tune.run`: the real tune flow on a params.yaml (parallelism 1)

Per-trial time is the interval between consecutive trial completions (Optuna's
datetime_complete; the first trial counts from its start; perf_counter marks for the bare loop),
so between-trial work (ask, tell, bookkeeping) is included. Each layer's "steal %" is the share of
the machine's CPU time its hypervisor gave to other guests meanwhile: on a shared virtual machine
a run with a high one is slow for reasons outside it. `--repeat N` runs the layers N times in turn
and prints the median overhead over the runs. All state goes to a fresh temporary
folder (MLflow SQLite store and artifacts, Optuna journals, a private PREFECT_HOME), deleted at exit.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # bench_objectives, for this process; PYTHONPATH for the workers below
os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import yaml  # noqa: E402
from bench_objectives import TYPE_NAME  # noqa: E402

LAYERS = ("bare", "optuna", "journal", "mlflow", "model", "process", "prefect", "pipeline")
NAMES = {
    "bare": "bare loop",
    "optuna": "optuna (memory)",
    "journal": "+ journal storage",
    "mlflow": "+ MLflow run",
    "model": "+ model artifact",
    "process": "+ worker process",
    "prefect": "+ Prefect task",
    "pipeline": "full pipeline (flows.tune)",
}
OVERHEAD_TARGET_MS = 25.0
Params = dict[str, Any]


@dataclass
class Row:
    """One line of the result table: per-trial intervals (ms) and the layer's wall time."""

    layer: str
    per_trial_ms: list[float]
    total_s: float
    params: list[Params] = field(default_factory=list)
    note: str = ""
    steal_pct: float | None = None  # CPU time the hypervisor took from this machine during the layer
    cpu: str = ""  # where the CPU of a steady-state trial went, by process (the pipeline layer)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per layer (default 300)")
    parser.add_argument("--cost-ms", default="0,5", help="objective costs in ms, comma-separated (default 0,5)")
    parser.add_argument("--layers", default=",".join(LAYERS), help=f"subset of {','.join(LAYERS)}")
    parser.add_argument(
        "--executor",
        default="process",
        choices=("process", "thread"),
        help="tune.executor of the full pipeline (default process, as params.yaml)",
    )
    parser.add_argument(
        "--journal-sync",
        action="store_true",
        help="tune.journal_sync true: fsync every journal write, as Optuna does (default: params.yaml's false)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the chosen layers this many times in turn and summarise the pipeline's overhead over the runs",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- set-up


def isolate(workdir: Path) -> None:
    """A private PREFECT_HOME in `workdir` (before Prefect is imported), `workdir` as working directory."""
    os.environ["PREFECT_HOME"] = str(workdir / "prefect-home")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.chdir(workdir)


def config_dict(
    workdir: Path, trials: int, seed: int, cost_ms: float, executor: str, tag: str, journal_sync: bool = False
) -> dict[str, Any]:
    """A small complete params.yaml: iris, SpinClassifier with two int parameters, random sampler."""
    paths = {
        k: str(workdir / tag / f)
        for k, f in (
            ("prepared", "../data/prepared.parquet"),
            ("tune_summary", "summary.json"),
            ("model_dir", "models/final"),
            ("tune_metrics", "metrics/tune.json"),
            ("test_metrics", "metrics/test.json"),
            ("history_plot", "plots/history.csv"),
            ("report_dir", "report"),
        )
    }
    return {
        "seed": seed,
        "paths": {"raw_dir": str(workdir / "data/raw"), **paths},
        "data": {"source": "sklearn", "name": "iris"},
        "model": {
            "allowed_modules": ["bench_objectives"],  # the benchmark's own estimator module
            "estimator": "bench_objectives.SpinClassifier",
            "fixed": {"cost_ms": cost_ms},
            "trusted_types": [TYPE_NAME],
        },
        "search_space": {"a": {"type": "int", "low": 0, "high": 1000}, "b": {"type": "int", "low": 0, "high": 1000}},
        "tune": {
            "sampler": "random",
            "n_trials": trials,
            "metric": "accuracy",
            "parallelism": 1,
            "executor": executor,
            "storage": str(workdir / tag / "optuna/study.journal"),
            "journal_sync": journal_sync,
            "study_name": f"bench-{tag}",
        },
        "tracking": {
            "uri": f"sqlite:///{workdir / 'mlruns/mlflow.db'}",
            "artifact_root": str(workdir / "mlruns/artifacts"),
            "experiment": f"bench-{tag}",
        },
    }


def write_config(workdir: Path, tag: str, **kw: Any) -> Path:
    path = workdir / tag / "params.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_dict(workdir, tag=tag, **kw), sort_keys=False), encoding="utf-8")
    return path


def run_prepare(params: Path) -> float:
    """The prepare flow in its own process (so the tune flow here starts its own Prefect server)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows.cli", "prepare", "--params", str(params)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"prepare flow failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


# ---------------------------------------------------------------- timing


def intervals(trials: list[optuna.trial.FrozenTrial]) -> list[float]:
    """Completion-to-completion intervals in ms; the first trial counts from its own start."""
    done = sorted((t for t in trials if t.datetime_complete is not None), key=lambda t: t.datetime_complete)
    if not done:
        return []
    marks = [done[0].datetime_start] + [t.datetime_complete for t in done]
    return [(b - a).total_seconds() * 1000 for a, b in zip(marks, marks[1:])]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def cpu_counters() -> tuple[int, int] | None:
    """(stolen, total) CPU time in ticks since boot, from /proc/stat; None where there is none (not Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def timed_layer(run: Callable[[], Row]) -> Row:
    """Run a layer and note the share of CPU time stolen meanwhile (a virtual machine's noisy neighbours)."""
    before = cpu_counters()
    row = run()
    after = cpu_counters()
    if before and after and after[1] > before[1]:
        row.steal_pct = 100 * (after[0] - before[0]) / (after[1] - before[1])
    return row


# ---------------------------------------------------------------- layers below the pipeline


class Layers:
    """The in-process layers for one config, sharing prepared data, tracking and one executor per kind."""

    def __init__(self, cfg: Any, workdir: Path):
        from runners import Limits, make_runner
        from runners.starting import PRELOAD
        from tracking.provenance import lineage_tags
        from tracking.runs import start_run
        from tracking.store import open_tracker
        from trials.records import TrialContext
        from tunedag.data import file_md5, load_prepared

        self.cfg, self.workdir = cfg, workdir
        self.version = file_md5(cfg.paths.prepared)
        self.prep = load_prepared(cfg.paths.prepared, self.version)
        self.tracker = open_tracker(cfg.tracking)
        tags = lineage_tags(f"layers-{cfg.tune.study_name}", self.version)
        parent = start_run(self.tracker, "bench-layers", tags).info.run_id
        self.ctx = {
            kind: TrialContext(
                cfg,
                self.version,
                self.tracker.experiment_id,
                parent,
                f"layers-{cfg.tune.study_name}",
                tags,
                make_runner(kind, 1, Limits(1), PRELOAD),
            )
            for kind in ("thread", "process")
        }

    def close(self) -> None:
        for ctx in self.ctx.values():
            ctx.runner.close()

    def run_trial(self, kind: str, trial: optuna.Trial, params: Params) -> Any:
        """The trial task's own code, called in this thread: create the run, run the job, record the run."""
        from tasks.tuning import run_trial
        from trials.records import start_trial

        ctx = self.ctx[kind]
        run_id, job = start_trial(ctx, trial, params, False)
        return run_trial.fn(ctx, job, run_id)

    def objective(self, params: Params) -> float:
        from tunedag.objective import evaluate

        return evaluate(self.cfg, self.prep, params).value

    def tracked(self, with_model: bool) -> Callable[[optuna.Trial, Params], float]:
        """MLflow run with params, metrics and tags (and the model folder) through the trial task's own code."""
        from trials.job import JobResult
        from tunedag.objective import evaluate

        ctx = self.ctx["thread"]

        def without_model(trial: optuna.Trial, params: Params) -> float:
            from trials import records

            started = time.perf_counter()
            run_id, job = records.start_trial(ctx, trial, params, False)
            outcome = evaluate(self.cfg, self.prep, params)
            result = JobResult("COMPLETE", outcome.values, outcome.metrics)
            records.record(
                ctx.tracker().client,
                run_id,
                job,
                result,
                time.perf_counter() - started,
            )
            return outcome.value

        def with_model_fn(trial: optuna.Trial, params: Params) -> float:
            result = self.run_trial("thread", trial, params)
            assert result.state == "COMPLETE", result.error
            return result.values[0]

        return with_model_fn if with_model else without_model

    def in_process(self) -> Callable[[optuna.Trial, Params], float]:
        def fn(trial: optuna.Trial, params: Params) -> float:
            result = self.run_trial("process", trial, params)
            assert result.state == "COMPLETE", result.error
            return result.values[0]

        return fn


def suggest(trial: optuna.Trial) -> Params:
    return {"a": trial.suggest_int("a", 0, 1000), "b": trial.suggest_int("b", 0, 1000)}


def optuna_layer(name: str, cfg: Any, fn: Callable[[optuna.Trial, Params], float], trials: int, storage: Any = None) -> Row:
    """`study.optimize` over `fn`; the note gives this process's CPU per trial (all of it, for the in-memory baseline)."""
    from tunedag.samplers import build_sampler

    started, cpu = time.perf_counter(), time.process_time()
    study = optuna.create_study(storage=storage, sampler=build_sampler(cfg), direction=cfg.tune.resolved_direction)
    study.optimize(lambda t: fn(t, suggest(t)), n_trials=trials)
    total, cpu = time.perf_counter() - started, time.process_time() - cpu
    ordered = sorted(study.trials, key=lambda t: t.number)
    return Row(
        name, intervals(ordered), total, [t.params for t in ordered], note=f"this process {cpu * 1000 / trials:.1f} ms CPU/trial"
    )


def bare_loop(cfg: Any, layers: Layers, trials: int) -> Row:
    """The physical limit: sample with numpy (not Optuna's sequence), evaluate, nothing else."""
    rng, marks = np.random.default_rng(cfg.seed), [time.perf_counter()]
    for _ in range(trials):
        p = {"a": int(rng.integers(0, 1001)), "b": int(rng.integers(0, 1001))}
        layers.objective(p)
        marks.append(time.perf_counter())
    return Row(NAMES["bare"], [(b - a) * 1000 for a, b in zip(marks, marks[1:])], marks[-1] - marks[0], note="own sequence")


def prefect_layer(cfg: Any, layers: Layers, trials: int, storage: Any) -> Row:
    """The real trial task, submitted one at a time from a Prefect flow (the process executor)."""
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from tasks.tuning import run_trial
    from trials.records import start_trial

    ctx = layers.ctx["process"]

    @flow(name="bench-prefect-layer", task_runner=ThreadPoolTaskRunner(max_workers=1))
    def bench_flow() -> Row:
        def fn(trial: optuna.Trial, params: Params) -> float:
            run_id, job = start_trial(ctx, trial, params, False)
            result = run_trial.submit(ctx, job, run_id).result()
            assert result.state == "COMPLETE", result.error
            return result.values[0]

        return optuna_layer(NAMES["prefect"], cfg, fn, trials, storage)

    return bench_flow()


# ---------------------------------------------------------------- the pipeline


def pipeline_layer(cfg: Any) -> tuple[Row, float]:
    """flows.tune.run on the config, on the project's Prefect server (started here): intervals, start-up to the first trial.

    The note gives the CPU the Prefect server process used per trial once it was up (the flow's run included).
    """
    import psutil
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import flows.tune
    from services.prefect_api import STATE_DIR, Lease, read_state, stop
    from studies.storage import build_storage

    called_at = dt.datetime.now()
    started = time.perf_counter()
    lease = Lease(Path.cwd())  # as a stage command does: the project's server, started if none runs
    url = lease.wait()
    server = psutil.Process(read_state(Path.cwd() / STATE_DIR)["server"])
    sampler = CpuSampler(server.pid)
    with temporary_settings({PREFECT_API_URL: url}):
        ready_cpu = sum(server.cpu_times()[:2])  # its start-up apart
        sampler.start()
        try:
            flows.tune.run(cfg)
        finally:
            sampler.stop()
        APILogWorker.drain_all(timeout=10)  # the flow's last log lines reach the server before it stops
        EventsWorker.drain_all(timeout=10)
    server_cpu = sum(server.cpu_times()[:2]) - ready_cpu
    lease.release()
    stop(Path.cwd())
    total = time.perf_counter() - started
    storage = build_storage(cfg.tune.storage)
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = sorted(optuna.load_study(study_name=summary.study_name, storage=storage).trials, key=lambda t: t.number)
    startup = (trials[0].datetime_start - called_at).total_seconds()
    return Row(
        NAMES["pipeline"],
        intervals(trials),
        total,
        [t.params for t in trials],
        note=f"executor {cfg.tune.executor}; server {server_cpu * 1000 / len(trials):.0f} ms CPU/trial",
        cpu=sampler.per_trial([t.datetime_complete for t in trials if t.datetime_complete]),
    ), startup


class CpuSampler:
    """CPU time of this process (the flow), the Prefect server and the trial workers, sampled twice a second.

    `per_trial` divides what each used between two samples in the steady state (the first tenth of
    the trials and the end apart: start-up, the last model writes) by the trials completed between them.
    """

    GROUPS = ("flow process", "Prefect server", "trial workers", "other")

    def __init__(self, server_pid: int, every_s: float = 0.5):
        import threading

        import psutil

        self._me, self._server_pid, self._every = psutil.Process(), server_pid, every_s
        self._stop, self.samples = threading.Event(), []
        self._thread = threading.Thread(target=self._run, name="bench-cpu-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append((dt.datetime.now(), self._snapshot()))

    def _snapshot(self) -> dict[str, float]:
        import psutil

        cpu = dict.fromkeys(self.GROUPS, 0.0)
        cpu["flow process"] = sum(self._me.cpu_times()[:2])
        for child in self._me.children(recursive=True):
            try:
                used = sum(child.cpu_times()[:2])
                group = (
                    "Prefect server"
                    if child.pid == self._server_pid
                    else "trial workers"
                    if "forkserver" in " ".join(child.cmdline())
                    else "other"
                )
            except psutil.Error:  # gone meanwhile
                continue
            cpu[group] += used
        return cpu

    def per_trial(self, completed: list[dt.datetime]) -> str:
        done = sorted(completed)
        if len(done) < 20 or len(self.samples) < 3:
            return ""
        first = next((s for s in self.samples if s[0] >= done[len(done) // 10]), None)
        last = next((s for s in reversed(self.samples) if s[0] <= done[-1]), None)
        n = sum(first[0] < t <= last[0] for t in done) if first and last else 0
        if n < 10:
            return ""
        used = {g: (last[1][g] - first[1][g]) * 1000 / n for g in self.GROUPS}
        total = sum(used.values())
        parts = ", ".join(f"{g} {ms:.1f}" for g, ms in used.items() if g != "other" or ms >= 0.5)
        return (
            f"CPU per trial in the steady state ({n} trials): {parts}; total {total:.1f} ms, "
            f"at least {total / (os.cpu_count() or 1):.1f} ms of wall time a trial on {os.cpu_count()} CPUs"
        )


# ---------------------------------------------------------------- report


def table(rows: list[Row]) -> str:
    head = f"{'layer':<30} {'trials':>6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'total s':>8} {'steal %':>7}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        p50, p95 = percentile(r.per_trial_ms, 50), percentile(r.per_trial_ms, 95)
        mean = sum(r.per_trial_ms) / len(r.per_trial_ms) if r.per_trial_ms else math.nan
        steal = f"{r.steal_pct:.1f}" if r.steal_pct is not None else "n/a"
        lines.append(
            f"{r.layer:<30} {len(r.per_trial_ms):>6} {p50:>8.2f} {p95:>8.2f} {mean:>8.2f} {r.total_s:>8.2f} {steal:>7}  {r.note}"
        )
    return "\n".join(lines)


def verdicts(rows: dict[str, Row], cost_ms: float) -> list[str]:
    out = []
    base, pipe = rows.get("optuna"), rows.get("pipeline")
    if base and pipe:
        over = percentile(pipe.per_trial_ms, 50) - percentile(base.per_trial_ms, 50)
        ok = "met" if over < OVERHEAD_TARGET_MS else "NOT met"
        out.append(
            f"full pipeline over bare Optuna: p50 {over:.1f} ms/trial (target < {OVERHEAD_TARGET_MS:.0f} ms: {ok}); "
            f"mean {sum(pipe.per_trial_ms) / len(pipe.per_trial_ms) - sum(base.per_trial_ms) / len(base.per_trial_ms):.1f} ms/trial"
        )
        phase = sum(pipe.per_trial_ms) / sum(base.per_trial_ms)
        out.append(
            f"trial phase wall time, pipeline / bare Optuna: {phase:.3f}x "
            f"({sum(pipe.per_trial_ms) / 1000:.2f} s / {sum(base.per_trial_ms) / 1000:.2f} s; start-up excluded)"
            + ("  (target <= 1.05x for ~0.5 s trials: " + ("met)" if phase <= 1.05 else "NOT met)") if cost_ms >= 400 else "")
        )
    seqs = [r.params for k, r in rows.items() if r.params]
    out.append(f"same parameter sequence in every Optuna layer: {'yes' if all(s == seqs[0] for s in seqs) else 'NO'}")
    return out


def environment() -> str:
    libs = ", ".join(f"{n} {version(n)}" for n in ("optuna", "mlflow", "prefect", "scikit-learn"))
    load = os.getloadavg()
    return f"{libs}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average at start {load[0]:.2f}"


def run_cost(workdir: Path, cost_ms: float, args: argparse.Namespace, wanted: list[str], rep: int = 0) -> dict[str, Row]:
    """The chosen layers for one objective cost, printed as a table; the rows (run `rep` of `--repeat` has its own study files)."""
    from studies.storage import build_storage
    from tunedag.config import load_config

    tag = f"cost{cost_ms:g}" + (f"-run{rep + 1}" if rep else "")
    cfg = load_config(
        write_config(
            workdir,
            tag,
            trials=args.trials,
            seed=args.seed,
            cost_ms=cost_ms,
            executor=args.executor,
            journal_sync=args.journal_sync,
        )
    )
    if not cfg.paths.prepared.is_file():
        print(f"prepare flow (own process, not counted): {run_prepare(workdir / tag / 'params.yaml'):.1f} s")
    rows: dict[str, Row] = {}
    layers = Layers(cfg, workdir)
    # One untimed trial through the whole in-process path: one-time imports land in no layer.
    optuna_layer("warm-up", cfg, layers.tracked(True), 2)
    journal = lambda name: build_storage(str(workdir / tag / f"optuna/{name}.journal"), cfg.tune.journal_sync)  # noqa: E731
    specs = {
        "bare": lambda: bare_loop(cfg, layers, args.trials),
        "optuna": lambda: optuna_layer(NAMES["optuna"], cfg, lambda t, p: layers.objective(p), args.trials),
        "journal": lambda: optuna_layer(NAMES["journal"], cfg, lambda t, p: layers.objective(p), args.trials, journal("journal")),
        "mlflow": lambda: optuna_layer(NAMES["mlflow"], cfg, layers.tracked(False), args.trials, journal("mlflow")),
        "model": lambda: optuna_layer(NAMES["model"], cfg, layers.tracked(True), args.trials, journal("model")),
        "process": lambda: optuna_layer(NAMES["process"], cfg, layers.in_process(), args.trials, journal("process")),
        "prefect": lambda: prefect_layer(cfg, layers, args.trials, journal("prefect")),
    }
    for key in [k for k in LAYERS if k in wanted and k in specs]:
        rows[key] = timed_layer(specs[key])
        if key == "process":
            rows[key].note = "pebble pool from a forkserver"
    startup: list[float] = []
    if "pipeline" in wanted:
        rows["pipeline"] = timed_layer(lambda: _with_startup(pipeline_layer(cfg), startup))
    run = f", run {rep + 1} of {args.repeat}" if args.repeat > 1 else ""
    print(
        f"\nobjective: evaluate(SpinClassifier, cost {cost_ms:g} ms) on iris, 2 int params, RandomSampler(seed={args.seed}), "
        f"{args.trials} trials per layer, parallelism 1, tune.journal_sync {str(args.journal_sync).lower()}{run}"
    )
    print(table(list(rows.values())))
    if startup:
        print(
            f"full pipeline start-up (flows.tune.run called -> first trial started, Prefect temporary server included): {startup[0]:.2f} s"
        )
    if "pipeline" in rows and rows["pipeline"].cpu:
        print(rows["pipeline"].cpu)
    for line in verdicts(rows, cost_ms):
        print(line)
    sys.stdout.flush()
    layers.close()
    return rows


def _with_startup(result: tuple[Row, float], startup: list[float]) -> Row:
    startup.append(result[1])
    return result[0]


def summary(runs: list[dict[str, Row]], cost_ms: float) -> list[str]:
    """The pipeline's overhead over bare Optuna across `--repeat` runs: the median and every run's value."""
    pairs = [(r["optuna"], r["pipeline"]) for r in runs if "optuna" in r and "pipeline" in r]
    if len(pairs) < 2:
        return []
    over = [percentile(p.per_trial_ms, 50) - percentile(b.per_trial_ms, 50) for b, p in pairs]
    phase = [sum(p.per_trial_ms) / sum(b.per_trial_ms) for b, p in pairs]
    steal = [max(x.steal_pct or 0.0 for x in pair) for pair in pairs]
    each = lambda values, fmt: ", ".join(format(v, fmt) for v in values)  # noqa: E731
    return [
        f"over {len(pairs)} runs (cost {cost_ms:g} ms), each bare Optuna then the pipeline:",
        f"  pipeline over bare Optuna, p50: median {percentile(over, 50):.1f} ms/trial (runs: {each(over, '.1f')})",
        f"  trial phase wall time, pipeline / bare Optuna: median {percentile(phase, 50):.3f}x (runs: {each(phase, '.3f')})",
        f"  CPU stolen by the hypervisor, the worse layer of each run: {each(steal, '.1f')} %",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [k.strip() for k in args.layers.split(",")]
    unknown = set(wanted) - set(LAYERS)
    if unknown:
        raise SystemExit(f"unknown layers: {', '.join(sorted(unknown))}; choose from {', '.join(LAYERS)}")
    if args.repeat < 1:
        raise SystemExit("--repeat must be 1 or more")
    workdir = Path(tempfile.mkdtemp(prefix="tunedag-bench-")).resolve()
    if not args.keep:  # registered first, so it runs after Prefect's own exit handlers
        atexit.register(shutil.rmtree, workdir, True)
    isolate(workdir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    print(environment())
    for cost in [float(c) for c in args.cost_ms.split(",")]:
        runs = [run_cost(workdir, cost, args, wanted, rep) for rep in range(args.repeat)]
        lines = summary(runs, cost)
        if lines:
            print("\n" + "\n".join(lines))
    print(f"\nwhole benchmark: {time.perf_counter() - started:.0f} s" + (f"; state kept in {workdir}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
