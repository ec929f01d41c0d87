"""Time the five stages spend outside their own work: the default `dvc repro` sequence, stage by stage.

Run from the repository root:  python benchmarks/stage_overhead.py [--root DIR] [--trials 4]

It copies the working tree of `--root` (git's tracked and untracked, not ignored files) to a
temporary folder and runs prepare, tune (`tune.n_trials` = `--trials`), train, evaluate and report
there, one command each, as dvc.yaml does, with no PREFECT_API_URL (as on a fresh clone, with
PREFECT_HOME in the folder). A stage's own work is its flow run, from Prefect's "Beginning flow
run" line to its last "Finished in state" line; the rest of the command's wall time (imports,
config, the Prefect server, shutting down) is the overhead.

Three passes over the five stages in the same folder, one table each: `first` (a fresh clone: the
project's Prefect server starts and creates its database), `server up` (run again at once: the
server is still up, as for runs within TUNEDAG_PREFECT_IDLE_S of each other) and `server stopped`
(after the server stopped, as after a pause: it starts again on its existing database). Each pass
raises tune.n_trials by `--trials`, as a user asking for more trials would.
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

STAGES = ("prepare", "tune", "train", "evaluate", "report")
STAMP = re.compile(r"^(\d\d:\d\d:\d\d\.\d\d\d) \| \w+ +\| (?:Flow run|Task run) .* - (Beginning flow run|Finished in state)")


def copy_tree(root: Path, dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True, check=True
    ).stdout
    for name in filter(None, files.decode().split("\0")):
        if (root / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dest / name)


def flow_span(out: str, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The first 'Beginning flow run' and the last 'Finished in state' of the command's log."""
    begins, ends = [], []
    for line in out.splitlines():
        if m := STAMP.match(line):
            when = dt.datetime.combine(day, dt.time.fromisoformat(m.group(1)))
            (begins if m.group(2).startswith("Beginning") else ends).append(when)
    return min(begins), max(ends)


def run_stage(stage: str, project: Path, env: dict[str, str], trials: int) -> tuple[float, float]:
    """(wall seconds, seconds of the flow run) of one stage command."""
    head = [str(Path(sys.executable).parent / "tunedag"), stage]
    args = ["--set", f"tune.n_trials={trials}"] if stage == "tune" else []
    started = dt.datetime.now()
    t0 = time.perf_counter()
    done = subprocess.run([*head, *args], cwd=project, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{stage} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    begin, end = flow_span(done.stdout + "\n" + done.stderr, started.date())
    return wall, (end - begin).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="the repository to copy")
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args(argv)
    project = Path(tempfile.mkdtemp(prefix="tunedag-stages-")).resolve()
    try:
        copy_tree(args.root.resolve(), project)
        env = {
            **os.environ,
            "PREFECT_HOME": str(project / ".prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(args.root.resolve()),
        }
        env.pop("PREFECT_API_URL", None)
        sys.path.insert(0, str(args.root.resolve()))
        from services.prefect_api import stop

        for k, npass in enumerate(("first", "server up", "server stopped"), 1):
            if npass == "server stopped":
                stop(project)
            trials = args.trials * k  # each pass adds --trials trials to the study, as a user raising tune.n_trials
            rows = [(stage, *run_stage(stage, project, env, trials)) for stage in STAGES]
            print_table(f"tunedag stages of {args.root} (tune.n_trials={trials}), {npass}", rows)
    finally:
        if (project / ".tunedag").is_dir():
            from services.prefect_api import stop

            stop(project)
        shutil.rmtree(project, ignore_errors=True)
    return 0


def print_table(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    head = f"{'stage':<10} {'command s':>10} {'flow run s':>11} {'outside s':>10}"
    print(head + "\n" + "-" * len(head))
    for stage, wall, flow in rows:
        print(f"{stage:<10} {wall:>10.2f} {flow:>11.2f} {wall - flow:>10.2f}")
    print(
        f"{'total':<10} {sum(r[1] for r in rows):>10.2f} {sum(r[2] for r in rows):>11.2f} {sum(r[1] - r[2] for r in rows):>10.2f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
