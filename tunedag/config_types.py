"""Number types of the config schema: YAML's `true` / `false` is never read as 1 / 0.

pydantic's lax mode turns a boolean into a number (`n_trials: true` became 1 trial). Integers are
strict (YAML integers only); floats take YAML integers and floats, and strings of numbers such as
`1e-3` (which YAML 1.1 reads as a string), but no boolean. Non-finite floats are refused by the
schema's `allow_inf_nan=False`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, StrictInt


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not the boolean {str(value).lower()}")
    return value


Int = StrictInt
Float = Annotated[float, BeforeValidator(_no_bool)]
