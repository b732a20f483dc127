"""
### Luna reporter

Runs the reporter tasks created through the Luna Tasks API (`POST /6/tasks/reporter`) on Airflow.
`split` reads the result of the finished clustering task the report is about and shares its
(cluster, object id) pairs out, each mapped `subtask` writes the CSV rows of its pairs with the
objects' current data, and `collect` streams the parts and the samples into one zip archive.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.reporter import LunaReporterOperator

dag = luna_task_dag(LunaReporterOperator, doc_md=__doc__)
