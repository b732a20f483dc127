"""Airflow plugins of the Luna provider."""
