"""Services tunedag runs for a project: its Prefect API."""
