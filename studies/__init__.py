"""Optuna study storage: opening, ownership, the journal, continuation and re-tuning."""
