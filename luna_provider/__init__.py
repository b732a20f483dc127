"""Luna Tasks compatible face-analytics tasks, built as an Apache Airflow 3 provider."""

from __future__ import annotations

__version__ = "0.1.0"

#: version of the Luna Tasks API this package implements
LUNA_TASKS_API_VERSION = "3.24.2"


def get_provider_info() -> dict:
    """Return the provider metadata Airflow lists under Providers."""
    return {
        "package-name": "airflow-provider-luna",
        "name": "Luna Tasks",
        "description": "Luna Tasks compatible face-analytics tasks (clustering, cross-match, ROC, ...).",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "postgres",
                "hook-class-name": "airflow.providers.postgres.hooks.postgres.PostgresHook",
            }
        ],
        "hooks": [{"integration-name": "Luna Tasks", "python-modules": ["luna_provider.hooks.luna"]}],
        "operators": [
            {
                "integration-name": "Luna Tasks",
                "python-modules": [
                    "luna_provider.operators.clustering",
                    "luna_provider.operators.linker",
                    "luna_provider.operators.gc",
                ],
            }
        ],
        "plugins": [{"name": "luna", "plugin-class": "luna_provider.plugins.luna.LunaPlugin"}],
    }
