"""
### Luna cross-match

Runs the cross-match tasks created through the Luna Tasks API (`POST /6/tasks/cross_match`) on
Airflow. `split` snapshots the references and the candidates, each mapped `subtask` matches a
range of references with every candidate in blocks and keeps each reference's best `limit`
candidates at or above the threshold, and `collect` joins the parts into the result.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.cross_match import LunaCrossMatchOperator

dag = luna_task_dag(LunaCrossMatchOperator, doc_md=__doc__)
