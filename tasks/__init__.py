"""Thin Prefect tasks that add tracking (MLflow) and I/O around tunedag's pure logic."""
