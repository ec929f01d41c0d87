"""A study's trials counted by outcome, as the report, the tune metrics and `tunedag status` print them."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from studies.configurations import DUPLICATE_OF

REPEATS = "repeats not run"  # failed trials the loop did not run: the study held their configuration


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by final state: complete, pruned, fail, and repeats (failed, not run: `studies.configurations.DUPLICATE_OF`).

    Running or waiting trials are not counted.
    """
    counts = dict.fromkeys(("complete", "pruned", "fail", REPEATS), 0)
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.FAIL and DUPLICATE_OF in t.user_attrs:
            counts[REPEATS] += 1
        elif t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            counts[t.state.name.lower()] += 1
    return counts


def count_text(counts: dict[str, int]) -> str:
    """Counts as "30 complete, 0 pruned, 0 fail", then "1 repeat not run" only when there are repeats."""
    parts = [f"{n} {name}" for name, n in counts.items() if name != REPEATS]
    if counts.get(REPEATS):
        parts.append(f"{counts[REPEATS]} {'repeat' if counts[REPEATS] == 1 else 'repeats'} not run")
    return ", ".join(parts)
