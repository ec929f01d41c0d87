"""MLflow internals tunedag reaches: the requirement check a model save runs (checked for 3.x by tests/compat).

`mlflow.sklearn.save_model` compares the model's pip requirements with the installed packages on every save:
`mlflow.utils.environment` calls its module global `warn_dependency_requirement_mismatches`, about 60% of a
small model's save. tunedag's requirements are the installed versions (`modelio.mlflow_models.pip_requirements`),
so within a process the answer cannot change: the check runs once per requirement list.
"""

from __future__ import annotations

SUPPORTED = ("mlflow", "3.0", "4.0")
MODULE = "mlflow.utils.environment"  # whose global the save path calls


def check_requirements_once() -> None:
    """From now on in this process, MLflow's requirement check runs once per distinct requirement list."""
    import importlib

    env = importlib.import_module(MODULE)
    check = env.warn_dependency_requirement_mismatches
    if getattr(check, "tunedag_once", False):
        return
    seen: set[tuple[str, ...]] = set()

    def once(model_requirements: list[str]) -> None:
        key = tuple(model_requirements)
        if key not in seen:
            check(model_requirements)
            seen.add(key)

    once.tunedag_once = True  # type: ignore[attr-defined]
    env.warn_dependency_requirement_mismatches = once
