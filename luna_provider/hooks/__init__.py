"""Hooks of the Luna provider."""
