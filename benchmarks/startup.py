"""Start-up of the tune stage: from the command to the first trial started, on the default params.yaml.

Run from the repository root:  python benchmarks/startup.py [--runs 2]

It copies the working tree (git's tracked and untracked, not ignored files) to a temporary
folder, runs the prepare stage there once (not timed), then times `tunedag tune
--set tune.n_trials=2` (the default config otherwise: 2 worker processes, journal storage,
SQLite MLflow store, the project's Prefect server, which the prepare stage started and the runs
reuse) `--runs` times from a cold project (no MLflow
store, no study yet: the database is created) and as many times warm (store and study kept,
trials added to the study). "first trial" is the earliest `datetime_start` of the trials that
run added to the study; the phases come from the log lines' timestamps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
TUNEDAG = str(Path(sys.executable).parent / "tunedag")
sys.path.insert(0, str(ROOT))
PATTERNS = {
    "server": "Starting temporary server|Temporary server on|Prefect API for this project on",
    "flow": "Beginning flow run",
    "study": "study created in|Using an existing study",
}


def copy_tree(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def trial_starts(project: Path) -> list[dt.datetime]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = project / "optuna/study.journal"
    if not path.exists():
        return []
    storage = JournalStorage(JournalFileBackend(str(path)))
    return [
        t.datetime_start
        for s in storage.get_all_studies()
        for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
        if t.datetime_start
    ]


def log_times(out: str, day: dt.date) -> dict[str, dt.datetime]:
    found = {}
    for line in out.splitlines():
        m = re.match(r"(\d\d:\d\d:\d\d\.\d\d\d) \|", line) or re.match(r"\[I (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\]", line)
        if not m:
            continue
        stamp = m.group(1)
        when = (
            dt.datetime.combine(day, dt.time.fromisoformat(stamp))
            if "|" in line[:16]
            else dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        )
        for key, pattern in PATTERNS.items():
            if key not in found and re.search(pattern, line):
                found[key] = when
    return found


def one_run(project: Path, env: dict[str, str]) -> dict[str, float]:
    before = set(trial_starts(project))
    started = dt.datetime.now()
    t0 = time.perf_counter()
    done = subprocess.run(
        [TUNEDAG, "tune", "--set", "tune.n_trials=" + str(len(before) + 2)], cwd=project, env=env, capture_output=True, text=True
    )
    total = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"tunedag tune failed ({done.returncode}):\n{done.stderr[-3000:]}")
    first = min(set(trial_starts(project)) - before)
    marks = log_times(done.stdout + done.stderr, started.date())
    row = {k: (v - started).total_seconds() for k, v in marks.items()}
    row["first trial"] = (first - started).total_seconds()
    row["whole command"] = total
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="cold runs and warm runs each (default 2)")
    args = parser.parse_args(argv)
    project = Path(tempfile.mkdtemp(prefix="tunedag-startup-")).resolve()
    try:
        copy_tree(project)
        env = {
            **os.environ,
            "PREFECT_HOME": str(project / ".prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(project),
        }  # the copy's code
        env.pop("PREFECT_API_URL", None)
        subprocess.run([TUNEDAG, "prepare"], cwd=project, env=env, capture_output=True, check=True)
        rows = []
        for kind in ("cold", "warm"):
            for _ in range(args.runs):
                if kind == "cold":
                    shutil.rmtree(project / "mlruns", ignore_errors=True)
                    shutil.rmtree(project / "optuna", ignore_errors=True)
                rows.append((kind, one_run(project, env)))
        print(
            f"\ntunedag tune on the default params.yaml (tune.n_trials set to finish after 2 trials); "
            f"{os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        head = f"{'run':<6} {'server ready':>20} {'flow run begins':>16} {'study open':>11} {'first trial':>12} {'whole command':>14}"
        print(head + "\n" + "-" * len(head))
        for kind, r in rows:
            cells = [f"{r[k]:.2f}" if k in r else "-" for k in ("server", "flow", "study", "first trial", "whole command")]
            print(f"{kind:<6} {cells[0]:>20} {cells[1]:>16} {cells[2]:>11} {cells[3]:>12} {cells[4]:>14}")
        print("seconds from the command; target: first trial < 10 s")
    finally:
        from services.prefect_api import stop

        stop(project)
        shutil.rmtree(project, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
