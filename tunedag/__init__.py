"""tunedag's pure ML logic: config schema, data, search spaces, estimators, metrics, objective.

Nothing here imports Prefect or MLflow; `tasks/` adds tracking and I/O, `flows/` wires the DAG.
"""
