"""scikit-learn names tunedag needs that scikit-learn keeps private (checked for 1.9.x by tests/compat).

`BaseEstimator._validate_params` checks each constructor argument against the estimator's
`_parameter_constraints` (what `fit` does first) without fitting: the one way to refuse a bad
search-space value before the first trial instead of in every trial that draws it.
"""

from __future__ import annotations

from typing import Any

SUPPORTED = ("scikit-learn", "1.9", "1.10")


def validate_params(estimator: Any) -> None:
    """Raise ValueError or TypeError (scikit-learn's InvalidParameterError is both) for an argument outside the
    estimator's declared constraints; estimators that declare none (third-party, tunedag.nets) pass."""
    if getattr(type(estimator), "_parameter_constraints", None) is None:
        return
    estimator._validate_params()
