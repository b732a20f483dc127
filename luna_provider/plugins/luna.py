"""The Airflow plugin of the Luna provider: a link from the Airflow UI to the Luna Tasks API."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


def _api_url() -> str:
    from luna_provider.settings import load

    return load().public_url


class LunaPlugin(AirflowPlugin):
    """Register the Luna Tasks API in the Airflow UI's navigation."""

    name = "luna"
    external_views = [
        {
            "name": "Luna Tasks API",
            "href": f"{_api_url()}/6/docs/spec",
            "destination": "nav",
            "category": "browse",
            "url_route": "luna_tasks_api",
        }
    ]
