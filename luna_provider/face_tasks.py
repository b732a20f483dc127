"""Checks at creation of the face tasks (estimator, additional extract) that the schema cannot make."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luna_provider.errors import BAD_INPUT, DESCRIPTOR_VERSION_UNKNOWN, HANDLERS_UNAVAILABLE, LIST_NOT_FOUND
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    import uuid

    from sqlalchemy import Engine


def detect_policy(content: dict) -> dict[str, bool]:
    """Return an estimator content's detect policy with Luna's defaults filled in."""
    policy = ((content.get("handler") or {}).get("policies") or {}).get("detect_policy") or {}
    return {
        "detect_face": bool(policy.get("detect_face", 1)),
        "estimate_basic_attributes": bool(policy.get("estimate_basic_attributes", 1)),
        "extract_face_descriptor": bool(policy.get("extract_face_descriptor", 1)),
    }


def check_face_task(
    task_type: TaskType,
    content: dict[str, Any],
    *,
    engine: Engine | None = None,
    account_id: uuid.UUID | None = None,
) -> None:
    """Refuse an estimator or additional extract content that cannot run, before it is stored."""
    from luna_provider.settings import load

    settings = load()
    if task_type == TaskType.ESTIMATOR:
        _check_estimator(content, settings, engine, account_id)
    else:
        _check_additional_extract(content, settings)


def _check_estimator(
    content: dict, settings: Any, engine: Engine | None, account_id: uuid.UUID | None
) -> None:
    from luna_provider.faces import has_face_engine
    from luna_provider.sources import check_source
    from luna_provider.store.face_records import StoragePolicy, missing_lists

    handler = content["handler"]
    if "handler_id" in handler:
        # There is no handlers service to resolve a stored handler: refuse rather than guess.
        raise HANDLERS_UNAVAILABLE(handler["handler_id"])
    if not detect_policy(content)["detect_face"] and content.get("image_type", 0) == 0:
        raise BAD_INPUT(
            "handler.policies.detect_policy.detect_face 0 needs image_type 1 (face warps): "
            "raw images without detection give nothing to estimate"
        )
    if not has_face_engine(settings.default_descriptor_version):
        raise DESCRIPTOR_VERSION_UNKNOWN(settings.default_descriptor_version)
    check_source(content["source"], settings)
    if engine is not None and account_id is not None:
        policy = StoragePolicy.from_policies(handler["policies"])
        missing = missing_lists(engine, account_id, policy.list_ids)
        if missing:
            raise LIST_NOT_FOUND(missing[0])


def _check_additional_extract(content: dict, settings: Any) -> None:
    from luna_provider.faces import has_face_engine

    options = content.get("options") or {}
    version = options.get("descriptor_version")
    if content["extraction_target"] != "face_descriptor":
        if version is not None:
            raise BAD_INPUT("options.descriptor_version applies to extraction_target face_descriptor only")
        return
    version = settings.default_descriptor_version if version is None else version
    if not has_face_engine(version):
        raise DESCRIPTOR_VERSION_UNKNOWN(version)
