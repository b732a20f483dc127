"""
### Luna clustering

Runs the clustering tasks created through the Luna Tasks API (`POST /6/tasks/clustering`) on
Airflow. `split` snapshots the selected descriptors and plans subtasks, each mapped `subtask`
links the pairs of its rows that are more similar than the threshold, and `collect` merges them
into clusters (connected components) and stores the result.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.clustering import LunaClusteringOperator

dag = luna_task_dag(LunaClusteringOperator, doc_md=__doc__)
