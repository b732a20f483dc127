"""Creating exporter and reporter tasks, and downloading their zip results."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from luna_provider.store.models import Task
from luna_provider.submission import store_task
from luna_provider.task_types import TaskType
from tests.unit.api.test_task_handlers import assert_luna_error, task_count


def clustering_task(engine, account: uuid.UUID, object_type: str = "faces", **values) -> int:
    task_id = store_task(
        engine, TaskType.CLUSTERING, account, {"content": {"filters": {"object_type": object_type}}}
    )
    if values:
        with engine.begin() as connection:
            connection.execute(update(Task).where(Task.task_id == task_id).values(**values))
    return task_id


DONE = {"task_status": 5, "result_key": "results/x/task.json", "result_content_type": "application/json"}


class TestExporterCreate:
    def test_exporter_task_is_stored_and_triggered(self, client, headers, airflow) -> None:
        body = {"content": {"objects_type": "events", "columns": ["event_id"], "csv_delimiter": ";"}}

        response = client.post("/6/tasks/exporter", json=body, headers=headers)

        assert response.status_code == 201, response.text
        task_id = response.json()["task_id"]
        [(dag_id, run_id, conf)] = airflow.triggered
        assert (dag_id, run_id, conf["task_id"]) == ("luna_exporter", f"luna_task_{task_id}", task_id)
        assert client.get(f"/6/tasks/{task_id}", headers=headers).json()["task_type"] == 8

    @pytest.mark.parametrize("delimiter", ['"', "\n", "\r"])
    def test_unreadable_delimiter_is_refused(self, client, headers, engine, airflow, delimiter) -> None:
        body = {"content": {"objects_type": "faces", "csv_delimiter": delimiter}}

        assert_luna_error(client.post("/6/tasks/exporter", json=body, headers=headers), 400, 28074)
        assert task_count(engine) == 0
        assert airflow.triggered == []


class TestReporterCreate:
    def test_report_on_a_done_clustering_is_created(
        self, client, headers, engine, account_id, airflow
    ) -> None:
        source = clustering_task(engine, account_id, **DONE)
        body = {"content": {"task_id": source, "parameters": {"columns": ["lists", "user_data"]}}}

        response = client.post("/6/tasks/reporter", json=body, headers=headers)

        assert response.status_code == 201, response.text
        task_id = response.json()["task_id"]
        assert [(d, r, c["task_id"]) for d, r, c in airflow.triggered] == [
            ("luna_reporter", f"luna_task_{task_id}", task_id)
        ]

    @pytest.mark.parametrize(
        ("case", "status", "code", "detail"),
        [
            ("missing", 404, 28001, "Task with id '{source}' not found"),
            ("other account", 404, 28001, "Task with id '{source}' not found"),
            ("pending", 400, 28015, "Tasks with status 'pending' does not support building a report"),
            ("running", 400, 28015, "Tasks with status 'in_progress' does not support building a report"),
            ("failed", 400, 28015, "Tasks with status 'failed' does not support building a report"),
            ("no result", 400, 28016, "Clusterization task without result does not support report"),
            ("expired result", 400, 28016, "Clusterization task without result does not support report"),
            ("not clustering", 400, 28070, "Task '{source}' is not a clustering task"),
            ("face columns", 400, 28071, "Columns tags, top_match do not apply to a report on faces"),
            ("event columns", 400, 28071, "Columns lists do not apply to a report on events"),
        ],
    )
    def test_report_source_is_checked_and_nothing_stored(
        self, client, headers, engine, account_id, airflow, case, status, code, detail
    ) -> None:
        columns = None
        past = datetime.now().astimezone() - timedelta(days=1)
        if case == "missing":
            source = 999
        elif case == "other account":
            source = clustering_task(engine, uuid.uuid4(), **DONE)
        elif case in ("pending", "running", "failed"):
            source = clustering_task(
                engine, account_id, task_status={"pending": 0, "running": 1}.get(case, 3)
            )
        elif case == "no result":
            source = clustering_task(engine, account_id, task_status=5)
        elif case == "expired result":
            source = clustering_task(engine, account_id, **DONE, result_expire_time=past)
        elif case == "not clustering":
            source = store_task(engine, TaskType.EXPORTER, account_id, {"content": {"objects_type": "faces"}})
        elif case == "face columns":
            source = clustering_task(engine, account_id, **DONE)
            columns = ["user_data", "tags", "top_match"]
        else:
            source = clustering_task(engine, account_id, "events", **DONE)
            columns = ["lists", "tags"]
        before = task_count(engine)
        content: dict = {"task_id": source}
        if columns:
            content["parameters"] = {"columns": columns}

        response = client.post("/6/tasks/reporter", json={"content": content}, headers=headers)

        body = assert_luna_error(response, status, code)
        assert body["detail"].startswith(detail.format(source=source))
        assert task_count(engine) == before
        assert airflow.triggered == []


class TestZipResult:
    def test_zip_result_is_streamed_as_an_attachment(
        self, client, headers, engine, account_id, luna_env
    ) -> None:
        task_id = store_task(engine, TaskType.EXPORTER, account_id, {"content": {"objects_type": "faces"}})
        key = f"results/{account_id}/task_{task_id}.zip"
        data = bytes(range(256)) * 12_000  # several 1 MiB chunks
        (luna_env / key).parent.mkdir(parents=True)
        (luna_env / key).write_bytes(data)
        with engine.begin() as connection:
            connection.execute(
                update(Task)
                .where(Task.task_id == task_id)
                .values(task_status=5, result_key=key, result_content_type="application/zip")
            )

        response = client.get(f"/6/tasks/{task_id}/result", headers=headers)

        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/zip"
        assert response.headers["Content-Disposition"] == f"attachment; filename=task_{task_id}.zip"
        assert "Content-Length" not in response.headers  # a stream, not a buffered body
        assert response.content == data
        other = {"Luna-Account-Id": str(uuid.uuid4())}
        assert_luna_error(client.get(f"/6/tasks/{task_id}/result", headers=other), 404, 28001)
