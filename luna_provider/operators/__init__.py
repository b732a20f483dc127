"""Operators of the Luna provider: one per task type, on a shared lifecycle."""
