"""What the trial loop's repeat check costs as a study grows, next to `tally`, which the loop already pays.

Run from the repository root:

    python benchmarks/repeat_check.py                 # a 5,000-trial study, measured at 100, 1,000 and 5,000 trials
    python benchmarks/repeat_check.py --trials 10000

One study on Optuna's journal file (tunedag's default storage, without fsync), trials of two
integer parameters from RandomSampler(seed 1), told COMPLETE one by one. At each measured length
the median of 50 calls (wall time, this process) of: `studies.storage.tally` (every loop decision),
`studies.configurations.twin_of` (once per trial, before it runs) and `count_held` (per decision,
for a finite space, `flows.tune._snapshot`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna  # noqa: E402

from studies.configurations import count_held, twin_of  # noqa: E402
from studies.storage import build_storage, tally  # noqa: E402


def median_ms(fn: Callable[[], object], calls: int = 50) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5000)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    marks = sorted({m for m in (100, 1000, args.trials) if m <= args.trials})
    storage = build_storage(str(Path(tempfile.mkdtemp(prefix="repeat-check-")) / "study.journal"), sync=False)
    study = optuna.create_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=1))
    print(f"ms per call, median of 50; Optuna journal, two integer parameters; load {open('/proc/loadavg').read().split()[0]}")
    print("| trials in the study | tally | twin_of | count_held |\n|---|---|---|---|")
    for n in range(1, args.trials + 1):
        trial = study.ask()
        params = {"a": trial.suggest_int("a", 0, 1000), "b": trial.suggest_int("b", 0, 1000)}
        if n in marks:
            cost = [median_ms(lambda: tally(study)), median_ms(lambda: twin_of(study, trial.number, params))]
            print(f"| {n:,} | {cost[0]:.3f} | {cost[1]:.3f} | {median_ms(lambda: count_held(study)):.3f} |")
        study.tell(trial, 0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
