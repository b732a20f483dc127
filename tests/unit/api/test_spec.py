from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_PATH = Path(__file__).resolve().parents[3] / "api_spec" / "luna-tasks.yaml"
SPEC_URI = "urn:luna-tasks-spec"
UUID = "7daa0e35-36a2-474a-8f2b-87f78b59d080"

OPERATIONS = {
    ("get", "/version", "version.get_version"),
    ("get", "/tasks", "tasks.get_tasks"),
    ("get", "/tasks/count", "tasks.get_tasks_count"),
    ("get", "/tasks/{task_id}", "tasks.get_task"),
    ("patch", "/tasks/{task_id}", "tasks.cancel_task"),
    ("delete", "/tasks/{task_id}", "tasks.delete_task"),
    ("get", "/tasks/{task_id}/result", "tasks.get_task_result"),
    ("get", "/tasks/{task_id}/subtasks", "tasks.get_subtasks"),
    ("get", "/tasks/{task_id}/notification_policy", "notification_policy.get_notification_policy"),
    ("put", "/tasks/{task_id}/notification_policy", "notification_policy.replace_notification_policy"),
    ("get", "/tasks/{task_id}/errors", "errors.get_task_errors"),
    ("get", "/tasks/{task_id}/errors/count", "errors.get_task_errors_count"),
    ("get", "/errors", "errors.get_errors"),
    ("get", "/errors/count", "errors.get_errors_count"),
    ("get", "/errors/{error_id}", "errors.get_error"),
    ("post", "/tasks/clustering", "task_creation.create_clustering_task"),
    ("post", "/tasks/exporter", "task_creation.create_exporter_task"),
    ("post", "/tasks/linker", "task_creation.create_linker_task"),
    ("post", "/tasks/gc", "task_creation.create_gc_task"),
    ("post", "/tasks/reporter", "task_creation.create_reporter_task"),
    ("post", "/tasks/additional_extract", "task_creation.create_additional_extract_task"),
    ("post", "/tasks/cross_match", "task_creation.create_cross_match_task"),
    ("post", "/tasks/roc", "task_creation.create_roc_task"),
    ("post", "/tasks/estimator", "task_creation.create_estimator_task"),
    ("post", "/tasks/lambda", "task_creation.create_lambda_task"),
    ("post", "/tasks/schedules", "schedules.create_schedule"),
    ("get", "/tasks/schedules", "schedules.get_schedules"),
    ("get", "/tasks/schedules/{schedule_id}", "schedules.get_schedule"),
    ("put", "/tasks/schedules/{schedule_id}", "schedules.replace_schedule"),
    ("patch", "/tasks/schedules/{schedule_id}", "schedules.patch_schedule"),
    ("delete", "/tasks/schedules/{schedule_id}", "schedules.delete_schedule"),
    ("get", "/docs/spec", "service.get_spec"),
    ("get", "/docs/dev", "service.get_dev_manual"),
    ("get", "/config", "service.get_config"),
    ("get", "/plugins", "service.get_plugins"),
    ("get", "/metrics", "service.get_metrics"),
    ("get", "/healthcheck", "service.healthcheck"),
}

#: path of each create endpoint -> one valid content per variant of its content schema
VALID_CONTENTS: dict[str, list[dict[str, Any]]] = {
    "/tasks/clustering": [
        {"filters": {"object_type": "faces", "list_id": UUID}, "threshold": 0.7, "limit": 1000},
        {
            "filters": {"object_type": "events", "tags": ["entrance"], "age__gte": 18},
            "descriptor": {"type": "body", "descriptor_version": 110},
            "use_track_info": True,
        },
    ],
    "/tasks/exporter": [
        {"objects_type": "faces", "filters": {"list_id": UUID}, "columns": ["face_id", "user_data"]},
        {"objects_type": "events", "columns": ["event_id", "top_match"], "csv_delimiter": ";"},
    ],
    "/tasks/linker": [
        {"list": {"list_id": UUID}, "filters": {"object_type": "faces", "user_data": "staff"}},
        {"list": {"create_list": 1, "user_data": "new"}, "filters": {"object_type": "events"}},
    ],
    "/tasks/gc": [
        {"target": "faces", "filters": {"list_id": UUID}, "remove_samples": True},
        {"target": "events", "remove_samples": True, "remove_image_origins": True},
        {"target": "face_descriptors", "descriptor_version": 59},
        {"target": "event_descriptors", "descriptor_version": 105, "descriptor_type": "body"},
    ],
    "/tasks/reporter": [
        {"task_id": 12, "parameters": {"columns": ["create_time", "face_id"], "save_images": True}},
    ],
    "/tasks/additional_extract": [
        {
            "extraction_target": "face_descriptor",
            "options": {"descriptor_version": 62, "missing": True},
            "filters": {"objects_type": "faces", "list_id": UUID},
        },
        {
            "extraction_target": "basic_attributes",
            "options": {"missing": True},
            "filters": {"objects_type": "events"},
        },
    ],
    "/tasks/cross_match": [
        {
            "references": {"filters": {"object_type": "faces", "list_id": UUID}},
            "candidates": {"filters": {"object_type": "events", "sources": ["cam-1"]}},
            "threshold": 0.5,
            "limit": 3,
        },
    ],
    "/tasks/roc": [
        {
            "markup": {
                "items": [{"object_id": UUID, "label": "a"}, {"object_id": UUID, "label": "b"}],
                "object_type": "faces",
            },
            "key_FPRs": [0.001, 0.01],
        },
    ],
    "/tasks/estimator": [
        {
            "source": {"source_type": "zip", "url": "http://example.com/images.zip"},
            "handler": {"handler_id": UUID},
        },
        {
            "source": {
                "source_type": "s3",
                "bucket_name": "images",
                "authorization": {"s3_key_id": "id", "s3_key": "secret"},
            },
            "handler": {"policies": {"detect_policy": {"detect_face": 1}}},
        },
        {"source": {"source_type": "network_disk", "path": "/srv/images"}, "handler": {"handler_id": UUID}},
        {"source": {"source_type": "ftp", "host": "ftp.local"}, "handler": {"handler_id": UUID}},
        {
            "source": {"source_type": "samba", "host": "smb.local", "path": "share/images"},
            "handler": {"handler_id": UUID},
            "image_type": 1,
        },
    ],
    "/tasks/lambda": [{"lambda_id": UUID, "anything": {"passed": "through"}}],
}

#: create endpoints whose content is free-form beyond its required keys
FREE_FORM_CONTENT = {"/tasks/lambda"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


@pytest.fixture(scope="module")
def registry(spec: dict[str, Any]) -> Registry:
    return Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4))


def body_validator(registry: Registry, path: str) -> Draft4Validator:
    pointer = "/paths/" + path.replace("~", "~0").replace("/", "~1")
    pointer += "/post/requestBody/content/application~1json/schema"
    schema = {"$ref": f"{SPEC_URI}#{pointer}"}
    return Draft4Validator(schema, registry=registry, format_checker=Draft4Validator.FORMAT_CHECKER)


def test_spec_is_valid_openapi(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.0.3"
    assert spec["info"]["version"] == "3.24.2"
    validate(spec)


def test_operations_match_the_contract(spec: dict[str, Any]) -> None:
    found = {
        (method, path, operation["operationId"])
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    assert found == OPERATIONS


def test_every_operation_declares_request_id_and_errors(spec: dict[str, Any]) -> None:
    request_id = {"$ref": "#/components/parameters/LunaRequestId"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert request_id in operation.get("parameters", []), (method, path)
            assert {"400", "500"} <= set(operation["responses"]), (method, path)


def test_create_endpoints_have_samples(spec: dict[str, Any]) -> None:
    create_paths = {path for method, path, op_id in OPERATIONS if op_id.startswith("task_creation.")}
    assert set(VALID_CONTENTS) == create_paths


@pytest.mark.parametrize(
    ("path", "content"),
    [(path, content) for path, contents in VALID_CONTENTS.items() for content in contents],
)
class TestCreateBodies:
    def test_valid_body_is_accepted(self, registry: Registry, path: str, content: dict[str, Any]) -> None:
        body = {"description": "nightly", "content": content}
        errors = list(body_validator(registry, path).iter_errors(body))
        assert not errors, [error.message for error in errors]

    def test_unknown_content_key_is_rejected(
        self, registry: Registry, path: str, content: dict[str, Any]
    ) -> None:
        body = {"content": {**copy.deepcopy(content), "unexpected_key": 1}}
        accepted = body_validator(registry, path).is_valid(body)
        assert accepted is (path in FREE_FORM_CONTENT)

    def test_unknown_envelope_key_is_rejected(
        self, registry: Registry, path: str, content: dict[str, Any]
    ) -> None:
        body = {"content": copy.deepcopy(content), "notificaion_policy": {}}
        assert not body_validator(registry, path).is_valid(body)

    def test_long_description_is_rejected(
        self, registry: Registry, path: str, content: dict[str, Any]
    ) -> None:
        body = {"description": "x" * 129, "content": copy.deepcopy(content)}
        assert not body_validator(registry, path).is_valid(body)


@pytest.mark.parametrize(
    "content",
    [
        {"filters": {"object_type": "faces"}, "threshold": 2},
        {"filters": {"object_type": "bodies"}},
        {"filters": {"object_type": "faces"}, "use_track_info": True},
        {"filters": {"object_type": "faces", "tags": ["a"]}},
        {"threshold": 0.5},
    ],
)
def test_invalid_clustering_content_is_rejected(registry: Registry, content: dict[str, Any]) -> None:
    assert not body_validator(registry, "/tasks/clustering").is_valid({"content": content})
