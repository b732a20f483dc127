from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, update

from luna_provider.store.models import Subtask, Task, TaskError
from tests.unit.api.test_spec import SPEC_PATH, VALID_CONTENTS

FACES_BODY = {"description": "nightly", "content": {"filters": {"object_type": "faces"}, "threshold": 0.7}}


def task_count(engine: Any) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(Task))


def assert_luna_error(response: Any, status: int, code: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error_code", "desc", "detail", "link"}
    assert body["error_code"] == code
    assert body["link"].endswith(f"code-{code}")
    return body


class TestCreate:
    def test_clustering_task_is_stored_pending_and_triggered(self, client, headers, engine, airflow) -> None:
        request_id = "1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a"

        response = client.post(
            "/6/tasks/clustering", json=FACES_BODY, headers={**headers, "Luna-Request-Id": request_id}
        )

        assert response.status_code == 201, response.text
        task_id = response.json()["task_id"]
        assert airflow.triggered == [("luna_clustering", f"luna_task_{task_id}", {"task_id": task_id})]
        assert airflow.request_ids == [request_id]
        task = client.get(f"/6/tasks/{task_id}", headers=headers).json()
        assert task["task_status"] == 0
        assert task["task_type"] == 2
        assert task["description"] == "nightly"
        assert task["content"] == FACES_BODY["content"]
        assert task["account_id"] == headers["Luna-Account-Id"]

    def test_native_prefix_answers_too(self, client, headers) -> None:
        assert client.post("/1/tasks/clustering", json=FACES_BODY, headers=headers).status_code == 201

    def test_failed_trigger_fails_the_task(self, client, headers, engine, airflow) -> None:
        from luna_provider.airflow_client import AirflowApiError

        airflow.fail_with = AirflowApiError(503, "api-server down")

        response = client.post("/6/tasks/clustering", json=FACES_BODY, headers=headers)

        body = assert_luna_error(response, 500, 28000)
        assert "api-server down" in body["detail"]
        with engine.connect() as connection:
            status, errors = connection.execute(
                select(Task.task_status, func.count(TaskError.error_id))
                .join(TaskError)
                .group_by(Task.task_id)
            ).one()
        assert (status, errors) == (3, 1)

    @pytest.mark.parametrize("path", sorted(VALID_CONTENTS))
    @pytest.mark.parametrize(
        "mutate",
        [
            pytest.param(lambda body: body.update(unknown=1), id="unknown-key"),
            pytest.param(lambda body: body.pop("content"), id="no-content"),
            pytest.param(lambda body: body.update(description="x" * 129), id="long-description"),
            pytest.param(lambda body: body.update(content=[]), id="content-not-object"),
            pytest.param(lambda body: body.update(notification_policy={"enable": 2}), id="bad-policy"),
        ],
    )
    def test_malformed_body_is_rejected_and_nothing_stored(
        self, client, headers, engine, path, mutate
    ) -> None:
        body = {"content": VALID_CONTENTS[path][0]}
        mutate(body)

        response = client.post(f"/6{path}", json=body, headers=headers)

        body = assert_luna_error(response, 400, 12022)
        assert body["detail"].startswith("Failed to validate input json.")
        assert task_count(engine) == 0

    @pytest.mark.parametrize("path", sorted(VALID_CONTENTS))
    def test_missing_account_header_is_rejected(self, client, engine, path) -> None:
        response = client.post(f"/6{path}", json={"content": VALID_CONTENTS[path][0]})

        assert response.status_code == 400
        assert response.json()["error_code"] == 12031
        assert task_count(engine) == 0

    def test_invalid_json_is_rejected(self, client, headers, engine) -> None:
        response = client.post(
            "/6/tasks/clustering",
            content=b"{not json",
            headers={**headers, "Content-Type": "application/json"},
        )

        assert response.status_code == 400
        assert task_count(engine) == 0

    def test_threshold_out_of_range_names_the_path(self, client, headers) -> None:
        body = {"content": {"filters": {"object_type": "faces"}, "threshold": 2}}

        detail = assert_luna_error(client.post("/6/tasks/clustering", json=body, headers=headers), 400, 12022)

        assert "threshold" in detail["detail"]

    def test_unknown_descriptor_version_is_rejected(self, client, headers, engine) -> None:
        body = {"content": {"filters": {"object_type": "faces"}, "descriptor": {"descriptor_version": 59}}}

        assert_luna_error(client.post("/6/tasks/clustering", json=body, headers=headers), 400, 28043)
        assert task_count(engine) == 0

    def test_task_type_without_dag_is_refused_and_not_stored(self, client, headers, engine) -> None:
        body = {"content": VALID_CONTENTS["/tasks/lambda"][0]}

        assert_luna_error(client.post("/6/tasks/lambda", json=body, headers=headers), 403, 28041)
        assert task_count(engine) == 0


def create(client, headers, body=FACES_BODY) -> int:
    response = client.post("/6/tasks/clustering", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["task_id"]


class TestRead:
    def test_accounts_are_isolated(self, client, headers) -> None:
        task_id = create(client, headers)
        other = {"Luna-Account-Id": str(uuid.uuid4())}

        assert_luna_error(client.get(f"/6/tasks/{task_id}", headers=other), 404, 28001)
        assert_luna_error(client.patch(f"/6/tasks/{task_id}", headers=other), 404, 28001)
        assert_luna_error(client.delete(f"/6/tasks/{task_id}", headers=other), 404, 28001)
        assert client.get("/6/tasks", headers=other).json() == {"tasks": []}
        assert client.get("/6/tasks/count", headers=other).json() == {"count": 0}
        assert client.get(f"/6/tasks/{task_id}", headers=headers).status_code == 200

    def test_account_query_parameter_scopes_reads(self, client, headers) -> None:
        task_id = create(client, headers)
        account = headers["Luna-Account-Id"]

        assert client.get(f"/6/tasks/{task_id}?account_id={account}").status_code == 200
        assert_luna_error(client.get(f"/6/tasks/{task_id}?account_id={uuid.uuid4()}"), 404, 28001)
        assert_luna_error(client.get(f"/6/tasks/{task_id}"), 400, 12012)

    def test_filters_and_pagination(self, client, headers, engine) -> None:
        ids = [create(client, headers) for _ in range(5)]
        with engine.begin() as connection:
            connection.execute(
                update(Task).where(Task.task_id == ids[1]).values(task_status=5, end_time=func.now())
            )

        def listed(query: str) -> list[int]:
            response = client.get(f"/6/tasks?{query}", headers=headers)
            assert response.status_code == 200, response.text
            return [task["task_id"] for task in response.json()["tasks"]]

        assert listed("") == ids[::-1]
        assert listed("page=1&page_size=2") == ids[::-1][:2]
        assert listed("page=3&page_size=2") == ids[:1]
        assert listed("task_status=5") == [ids[1]]
        assert listed(f"task_ids={ids[0]},{ids[2]}") == [ids[2], ids[0]]
        assert listed("task_type=6") == []
        assert listed("end_time__gte=2000-01-01T00:00:00Z") == [ids[1]]
        assert listed("create_time__lt=2000-01-01T00:00:00Z") == []
        count = client.get("/6/tasks/count?task_status=0", headers=headers).json()
        assert count == {"count": 4}

    @pytest.mark.parametrize(
        "query",
        [
            "page=0",
            "page_size=1001",
            "task_type=11",
            "task_status=9",
            "task_ids=a,b",
            "bogus=1",
            "create_time__lt=yesterday",
        ],
    )
    def test_bad_query_is_rejected(self, client, headers, query) -> None:
        response = client.get(f"/6/tasks?{query}", headers=headers)

        assert response.status_code == 400, response.text
        assert set(response.json()) == {"error_code", "desc", "detail", "link"}

    def test_subtasks_are_listed(self, client, headers, engine) -> None:
        task_id = create(client, headers)
        with engine.begin() as connection:
            connection.execute(
                Subtask.__table__.insert(),
                [
                    {"task_id": task_id, "part_index": 0, "content": {"start": 0}, "count_objects": 3},
                    {"task_id": task_id, "part_index": 1, "content": {"start": 3}, "count_objects": 2},
                ],
            )

        subtasks = client.get(f"/6/tasks/{task_id}/subtasks", headers=headers).json()["subtasks"]

        assert [(s["content"], s["count_objects"], s["subtask_status"]) for s in subtasks] == [
            ({"start": 0}, 3, 0),
            ({"start": 3}, 2, 0),
        ]


class TestCancelDelete:
    def test_cancel_stops_the_run(self, client, headers, airflow) -> None:
        task_id = create(client, headers)

        assert client.patch(f"/6/tasks/{task_id}", headers=headers).status_code == 204

        assert client.get(f"/6/tasks/{task_id}", headers=headers).json()["task_status"] == 2
        assert airflow.failed_runs == [("luna_clustering", f"luna_task_{task_id}")]
        assert_luna_error(client.patch(f"/6/tasks/{task_id}", headers=headers), 400, 28019)
        assert_luna_error(client.get(f"/6/tasks/{task_id}/result", headers=headers), 400, 28025)

    def test_delete_removes_task_and_result(self, client, headers, engine, luna_env) -> None:
        task_id = create(client, headers)
        result = luna_env / "results" / f"task_{task_id}.json"
        result.parent.mkdir(parents=True)
        result.write_text('{"result": 1}')
        with engine.begin() as connection:
            connection.execute(
                update(Task)
                .where(Task.task_id == task_id)
                .values(task_status=5, result_key=f"results/task_{task_id}.json", result_id=uuid.uuid4())
            )

        assert client.delete(f"/6/tasks/{task_id}", headers=headers).status_code == 204

        assert_luna_error(client.get(f"/6/tasks/{task_id}", headers=headers), 404, 28001)
        assert not result.exists()


class TestResult:
    def test_result_states(self, client, headers, engine, luna_env) -> None:
        task_id = create(client, headers)
        assert_luna_error(client.get(f"/6/tasks/{task_id}/result", headers=headers), 404, 28018)

        key = f"results/{headers['Luna-Account-Id']}/task_{task_id}.json"
        (luna_env / key).parent.mkdir(parents=True)
        (luna_env / key).write_text('{"result": {"clusters": [["a"]]}, "errors": []}')
        with engine.begin() as connection:
            connection.execute(
                update(Task)
                .where(Task.task_id == task_id)
                .values(task_status=5, result_key=key, result_content_type="application/json")
            )

        response = client.get(f"/6/tasks/{task_id}/result", headers=headers)

        assert response.status_code == 200
        assert response.json() == {"result": {"clusters": [["a"]]}, "errors": []}
        (luna_env / key).unlink()
        assert_luna_error(client.get(f"/6/tasks/{task_id}/result", headers=headers), 404, 28017)

    def test_failed_task_has_no_result(self, client, headers, engine) -> None:
        task_id = create(client, headers)
        with engine.begin() as connection:
            connection.execute(update(Task).where(Task.task_id == task_id).values(task_status=3))

        assert_luna_error(client.get(f"/6/tasks/{task_id}/result", headers=headers), 404, 28020)


class TestErrorsAndPolicy:
    def test_errors_endpoints(self, client, headers, engine) -> None:
        task_id = create(client, headers)
        other_task = create(client, {"Luna-Account-Id": str(uuid.uuid4())})
        with engine.begin() as connection:
            connection.execute(
                TaskError.__table__.insert(),
                [
                    {
                        "task_id": task_id,
                        "error_code": 12031,
                        "status_code": 400,
                        "description": "d",
                        "detail": "bad face",
                        "link": "",
                        "additional_info": "face-1",
                    },
                    {
                        "task_id": task_id,
                        "error_code": 28042,
                        "status_code": 500,
                        "description": "d",
                        "detail": "boom",
                        "link": "",
                        "additional_info": None,
                    },
                    {
                        "task_id": other_task,
                        "error_code": 12031,
                        "status_code": 400,
                        "description": "d",
                        "detail": "not yours",
                        "link": "",
                        "additional_info": None,
                    },
                ],
            )

        errors = client.get(f"/6/tasks/{task_id}/errors", headers=headers).json()["errors"]
        assert [e["detail"] for e in errors] == ["bad face", "boom"]
        assert errors[0]["additional_info"] == "face-1"
        assert (
            client.get("/6/errors?status_code=500", headers=headers).json()["errors"][0]["detail"] == "boom"
        )
        assert client.get("/6/errors/count", headers=headers).json() == {"count": 2}
        assert client.get("/6/errors/count?error_code=12031", headers=headers).json() == {"count": 1}
        assert client.get(f"/6/tasks/{task_id}/errors/count?error_code=28042", headers=headers).json() == {
            "count": 1
        }
        error_id = errors[0]["error_id"]
        assert client.get(f"/6/errors/{error_id}", headers=headers).json()["detail"] == "bad face"
        assert_luna_error(client.get(f"/6/errors/{error_id + 2}", headers=headers), 404, 28003)

    def test_notification_policy_round_trip(self, client, headers) -> None:
        task_id = create(client, headers)
        policy = {
            "enable": 1,
            "task_callbacks": [{"type": "http", "url": "http://127.0.0.1:9/cb"}],
            "subtask_callbacks": [],
        }

        assert (
            client.put(f"/6/tasks/{task_id}/notification_policy", json=policy, headers=headers).status_code
            == 204
        )

        stored = client.get(f"/6/tasks/{task_id}/notification_policy", headers=headers).json()
        assert stored["enable"] == 1
        assert stored["task_callbacks"][0]["url"] == "http://127.0.0.1:9/cb"
        bad = {"enable": 1, "task_callbacks": [{"type": "http"}]}
        assert (
            client.put(f"/6/tasks/{task_id}/notification_policy", json=bad, headers=headers).status_code
            == 400
        )


class TestService:
    def test_spec_is_served_byte_for_byte(self, client) -> None:
        response = client.get("/6/docs/spec", headers={"Accept": "application/x-yaml"})

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-yaml")
        assert response.content == SPEC_PATH.read_bytes()

    def test_spec_renders_as_html(self, client) -> None:
        response = client.get("/1/docs/spec", headers={"Accept": "text/html"})

        assert response.status_code == 200
        assert "/tasks/clustering" in response.text

    def test_request_id_is_echoed_or_generated(self, client) -> None:
        given = "1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a"

        assert (
            client.get("/6/version", headers={"Luna-Request-Id": given}).headers["luna-request-id"] == given
        )
        generated = client.get("/6/version").headers["luna-request-id"]
        assert re.fullmatch(r"[0-9]{10},[0-9a-f-]{36}", generated)
        assert_luna_error(client.get("/6/version", headers={"Luna-Request-Id": "nope"}), 400, 12016)

    def test_unknown_route_is_a_luna_404(self, client) -> None:
        assert_luna_error(client.get("/6/nothing/here"), 404, 12001)

    def test_version_health_metrics_config(self, client) -> None:
        assert client.get("/6/version").json() == {"Version": {"api": 1, "major": 3, "minor": 24, "patch": 2}}
        assert "execution_time" in client.get("/6/healthcheck").json()
        metrics = client.get("/6/metrics").text
        assert 'request_count_total{path="GET:/6/version",status_code="200"}' in metrics
        config = client.get("/6/config", headers={"Accept": "application/json"}).json()
        # a password, when the URL has one, is never shown
        assert re.search(r"//[^/@:]+:(?!\*\*\*@)[^@]*@", config["database_url"]) is None
        assert config["airflow_password"] in ("", "***")
