"""The final model as a voting or stacking ensemble of the top-K trials' pipelines.

Each member is an unfitted preprocessing + estimator Pipeline (`tunedag.objective.make_model`);
the ensemble is returned unfitted, for the caller to fit on train + validation. Every argument
is set explicitly, so a scikit-learn default that moves between releases changes nothing.
"""

from __future__ import annotations

from sklearn.base import BaseEstimator
from sklearn.ensemble import StackingClassifier, StackingRegressor, VotingClassifier, VotingRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline

ENSEMBLE_KINDS = ("voting", "stacking")
STACKING_FOLDS = 5

Members = list[tuple[str, Pipeline]]


def build_ensemble(kind: str, members: Members, task: str, seed: int) -> BaseEstimator:
    """An unfitted voting or stacking ensemble of `members`.

    Args:
        kind: "voting" (average of the members) or "stacking" (a linear model on their
            out-of-fold predictions).
        members: (name, unfitted Pipeline) pairs; names must be unique and free of "__".
        task: "classification" or "regression".
        seed: Seeds the shuffled folds in which stacking fits its final estimator.

    Returns:
        VotingClassifier (soft voting when every member has predict_proba, else hard),
        VotingRegressor, StackingClassifier or StackingRegressor.

    Raises:
        ValueError: An unknown kind or task, or fewer than two members.
    """
    if kind not in ENSEMBLE_KINDS:
        raise ValueError(f"ensemble kind must be one of {', '.join(ENSEMBLE_KINDS)} (got {kind!r})")
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression' (got {task!r})")
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least 2 members (got {len(members)})")
    if kind == "voting":
        return _voting(members, task)
    return _stacking(members, task, seed)


def voting_mode(members: Members) -> str:
    """'soft' when every member can predict probabilities, else 'hard' (majority of labels)."""
    return "soft" if all(hasattr(model, "predict_proba") for _, model in members) else "hard"


def _voting(members: Members, task: str) -> BaseEstimator:
    if task == "classification":
        return VotingClassifier(
            estimators=members,
            voting=voting_mode(members),
            weights=None,
            n_jobs=None,
            flatten_transform=True,
            verbose=False,
        )
    return VotingRegressor(estimators=members, weights=None, n_jobs=None, verbose=False)


def _stacking(members: Members, task: str, seed: int) -> BaseEstimator:
    if task == "classification":
        final = LogisticRegression(
            C=1.0,
            l1_ratio=0.0,
            tol=1e-4,
            fit_intercept=True,
            class_weight=None,
            random_state=seed,
            solver="lbfgs",
            max_iter=1000,
        )
        folds = StratifiedKFold(n_splits=STACKING_FOLDS, shuffle=True, random_state=seed)
        return StackingClassifier(
            estimators=members,
            final_estimator=final,
            cv=folds,
            stack_method="auto",
            n_jobs=None,
            passthrough=False,
            verbose=0,
        )
    final = RidgeCV(alphas=(0.1, 1.0, 10.0), fit_intercept=True, scoring=None, cv=None)
    folds = KFold(n_splits=STACKING_FOLDS, shuffle=True, random_state=seed)
    return StackingRegressor(
        estimators=members,
        final_estimator=final,
        cv=folds,
        n_jobs=None,
        passthrough=False,
        verbose=0,
    )
