"""
### Luna garbage collection

Runs the garbage-collection tasks created through the Luna Tasks API (`POST /6/tasks/gc`) on
Airflow. `split` cuts the selected faces, events or descriptors into id ranges of
`LUNA_GC_SUBTASK_SIZE`; each mapped `subtask` deletes its range in transactions of
`LUNA_GC_BATCH_SIZE` objects (an object goes with its descriptors, list links and, when asked, its
samples, or not at all) and deletes sample files after each commit; `collect` adds up the counts.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.gc import LunaGcOperator

dag = luna_task_dag(LunaGcOperator, doc_md=__doc__)
