"""Helpers of the face task tests: a module-wide database and object store, running a task's phases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text

from luna_provider import lifecycle
from luna_provider.operators.base import LunaTaskOperator
from luna_provider.settings import Settings, load
from luna_provider.storage import ObjectStore
from luna_provider.store.models import Base, FaceList
from luna_provider.submission import store_task
from luna_provider.task_types import TaskType


@dataclass
class Stack:
    """What the phases of a task need; one per test module, so a slow estimator run is shared."""

    engine: Engine
    store: ObjectStore
    monkeypatch: pytest.MonkeyPatch

    def settings(self, **overrides: str) -> Settings:
        for name, value in overrides.items():
            self.monkeypatch.setenv(name, value)
        return load()

    def create(self, task_type: TaskType, account_id: uuid.UUID, content: dict) -> int:
        return store_task(self.engine, task_type, account_id, {"content": content})

    def run(self, operator: type[LunaTaskOperator], task_id: int, **overrides: str) -> list[dict]:
        """Run split, every subtask and collect the way the DAG does, each as its own operator."""
        kwargs = {"engine": self.engine, "store": self.store, "settings": self.settings(**overrides)}
        parts = operator(task_id="split", phase="split").run_phase(task_id, **kwargs)
        for part in parts:
            operator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
        operator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
        return parts

    def result(self, task_id: int) -> dict[str, Any]:
        task = lifecycle.get_task(self.engine, task_id)
        assert task.task_status == 5, f"task {task_id} ended with status {task.task_status}"
        return self.store.get_json(task.result_key)

    def new_list(self, account_id: uuid.UUID) -> str:
        list_id = uuid.uuid4()
        with self.engine.begin() as connection:
            connection.execute(insert(FaceList).values(list_id=list_id, account_id=account_id))
        return str(list_id)


@pytest.fixture(scope="module", name="stack")
def module_stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A database and object store kept for the whole module; emptied at its end."""
    from luna_provider.store.db import get_engine

    home = tmp_path_factory.mktemp("luna-home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("LUNA_HOME", str(home))
        monkeypatch.setenv("LUNA_DATABASE_URL", database_url)
        monkeypatch.setenv("LUNA_OBJECT_STORE_URL", (home / "objects").as_uri())
        monkeypatch.setenv("LUNA_RECONCILE_INTERVAL", "0")
        engine = get_engine(database_url)
        yield Stack(engine, ObjectStore((home / "objects").as_uri()), monkeypatch)
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
