"""
### Luna ROC

Runs the ROC tasks created through the Luna Tasks API (`POST /6/tasks/roc`) on Airflow. `split`
snapshots the descriptors of the labelled markup, each mapped `subtask` matches a range of markup
objects with all of them, counting positive and negative pairs per similarity and the top-N hits,
and `collect` computes the ROC curve, AUC, EER, TPR at the key FPRs and a plot of the curve.

Trigger it through the API rather than by hand: the run's only parameter is the id of a stored task.
"""

from __future__ import annotations

from luna_provider.dag_factory import luna_task_dag
from luna_provider.operators.roc import LunaRocOperator

dag = luna_task_dag(LunaRocOperator, doc_md=__doc__)
