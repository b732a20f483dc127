"""
### Luna exporter

Runs the exporter tasks created through the Luna Tasks API (`POST /6/tasks/exporter`) on Airflow.
`split` counts the selected faces or events and cuts them into id ranges, each mapped `subtask`
writes the CSV rows of its range (and lists the samples to include), and `collect` streams the
parts and the samples into one zip archive in the object store.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.exporter import LunaExporterOperator

dag = luna_task_dag(LunaExporterOperator, doc_md=__doc__)
