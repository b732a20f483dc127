"""``POST /tasks/<type>``: create a task of each type."""

from __future__ import annotations

from luna_provider.api import services
from luna_provider.api.middleware import request_id_var
from luna_provider.submission import submit_task
from luna_provider.task_types import TaskType


def _create(task_type: TaskType, body: dict) -> tuple[dict, int]:
    task_id = submit_task(
        services.engine(),
        services.airflow(),
        task_type,
        services.header_account_id(),
        body,
        request_id=request_id_var.get(),
    )
    return {"task_id": task_id}, 201


def create_clustering_task(body: dict) -> tuple[dict, int]:
    """Create a clustering task."""
    return _create(TaskType.CLUSTERING, body)


def create_exporter_task(body: dict) -> tuple[dict, int]:
    """Create an exporter task."""
    return _create(TaskType.EXPORTER, body)


def create_linker_task(body: dict) -> tuple[dict, int]:
    """Create a linker task."""
    return _create(TaskType.LINKER, body)


def create_gc_task(body: dict) -> tuple[dict, int]:
    """Create a garbage collection task."""
    return _create(TaskType.GC, body)


def create_reporter_task(body: dict) -> tuple[dict, int]:
    """Create a reporter task."""
    return _create(TaskType.REPORTER, body)


def create_additional_extract_task(body: dict) -> tuple[dict, int]:
    """Create an additional extract task."""
    return _create(TaskType.ADDITIONAL_EXTRACT, body)


def create_cross_match_task(body: dict) -> tuple[dict, int]:
    """Create a cross-match task."""
    return _create(TaskType.CROSS_MATCH, body)


def create_roc_task(body: dict) -> tuple[dict, int]:
    """Create a ROC curve task."""
    return _create(TaskType.ROC, body)


def create_estimator_task(body: dict) -> tuple[dict, int]:
    """Create an estimator task."""
    return _create(TaskType.ESTIMATOR, body)


def create_lambda_task(body: dict) -> tuple[dict, int]:
    """Create a lambda task."""
    return _create(TaskType.LAMBDA, body)
