"""``/version``: the service version."""

from __future__ import annotations

from luna_provider import LUNA_TASKS_API_VERSION


def get_version() -> dict:
    """Return the API version in Luna's format."""
    major, minor, patch = (int(part) for part in LUNA_TASKS_API_VERSION.split("."))
    return {"Version": {"api": 1, "major": major, "minor": minor, "patch": patch}}
