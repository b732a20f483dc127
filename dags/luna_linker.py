"""
### Luna linker

Runs the linker tasks created through the Luna Tasks API (`POST /6/tasks/linker`) on Airflow.
`split` checks the target list (or creates it, once) and cuts the selected faces or events into id
ranges; each mapped `subtask` links its range to the list in transactions of
`LUNA_LINKER_SUBTASK_SIZE` objects, creating a face first for each event that has none; `collect`
adds up the counters and writes the result with the ids of the linked faces.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.linker import LunaLinkerOperator

dag = luna_task_dag(LunaLinkerOperator, doc_md=__doc__)
