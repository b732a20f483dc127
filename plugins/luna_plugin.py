"""Load the Luna provider's Airflow plugin in a deployment that mounts this folder."""

from __future__ import annotations

from luna_provider.plugins.luna import LunaPlugin

__all__ = ["LunaPlugin"]
