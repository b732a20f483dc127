"""
### Luna estimator

Runs the estimator tasks created through the Luna Tasks API (`POST /6/tasks/estimator`) on Airflow.
`split` lists the image files of the task's source (zip archive, S3 bucket, network disk, FTP or
Samba) into a manifest and plans subtasks of `LUNA_ESTIMATOR_SUBTASK_SIZE` images; each mapped
`subtask` reads its images one by one, detects the faces (dlib HOG), stores their aligned samples,
extracts descriptors (version 201), estimates age and gender and saves faces and/or events as the
task's policies ask; `collect` streams the per-image entries into the result.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.estimator import LunaEstimatorOperator

dag = luna_task_dag(LunaEstimatorOperator, doc_md=__doc__)
