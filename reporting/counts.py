"""A study's trials counted by outcome, as the report, the tune metrics and `tunedag status` print them."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from studies.configurations import DUPLICATE_OF

REPEATS = "repeats not run"  # failed trials the loop did not run: the study held their configuration


def outcome(t: FrozenTrial) -> str:
    """A trial's state for counting: its Optuna state in lower case, or `REPEATS` for a failed trial the loop did not run."""
    return REPEATS if t.state == TrialState.FAIL and DUPLICATE_OF in t.user_attrs else t.state.name.lower()


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Finished trials by `outcome`: complete, pruned, fail and repeats (running or waiting ones are not counted)."""
    counts = dict.fromkeys(("complete", "pruned", "fail", REPEATS), 0)
    for t in study.get_trials(deepcopy=False):
        if (name := outcome(t)) in counts:
            counts[name] += 1
    return counts


def count_text(counts: dict[str, int]) -> str:
    """Counts as "30 complete, 0 pruned, 0 fail", then "1 repeat not run" only when there are repeats."""
    parts = [f"{n} {name}" for name, n in counts.items() if name != REPEATS]
    if counts.get(REPEATS):
        parts.append(f"{counts[REPEATS]} {'repeat' if counts[REPEATS] == 1 else 'repeats'} not run")
    return ", ".join(parts)
