"""One trial outside Prefect: its job on the runner, its records in Optuna and MLflow, and the repair of trials dead processes left."""
