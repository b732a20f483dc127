"""
### Luna additional extract

Runs the additional extract tasks created through the Luna Tasks API
(`POST /6/tasks/additional_extract`) on Airflow. `split` cuts the faces or events that have a
stored sample but miss a descriptor of the requested version (or miss age or gender) into id
ranges; each mapped `subtask` re-extracts them from their samples and adds what is missing without
replacing anything; `collect` lists what was extracted.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.additional_extract import LunaAdditionalExtractOperator

dag = luna_task_dag(LunaAdditionalExtractOperator, doc_md=__doc__)
