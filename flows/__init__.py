"""Prefect flows: one per stage, and the pipeline that composes them. Wiring only."""
