"""Partial results as JSON Lines, merged into one result document without loading them whole.

A subtask writes one JSON object per line; ``collect`` streams the lines of every part into
``{"result": {"<items>": [...], <totals>}, "errors": [...]}``, so neither side holds more than one
line (and the running totals) in memory, however many objects the task processed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from luna_provider.operators.base import TaskResult, task_error_bodies

if TYPE_CHECKING:
    from luna_provider.operators.base import TaskRun
    from luna_provider.store.models import Subtask


class PartWriter:
    """Write one subtask's items as JSON Lines to the object store."""

    def __init__(self, run: TaskRun, part_index: int) -> None:
        self.key = f"{run.work_prefix}/part_{part_index}.jsonl"
        self._stream = run.store.open(self.key, "wb")
        self.count = 0

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stream.close()

    def write(self, item: dict[str, Any]) -> None:
        """Append one item."""
        self._stream.write(json.dumps(item, separators=(",", ":"), default=str).encode() + b"\n")
        self.count += 1


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def merge_parts(
    run: TaskRun,
    subtasks: Iterable[Subtask],
    items_name: str,
    count: Callable[[dict[str, Any]], None],
    totals: Callable[[], dict[str, Any]],
) -> TaskResult:
    """Stream the parts of ``subtasks`` into the task's result document; return it as a stored result.

    :param items_name: key of the list of items in ``result``.
    :param count: called with each item, to keep running totals.
    :param totals: returns the totals to add next to the items, once all are read.
    """
    key = f"{run.result_prefix}.json"
    with run.store.open(key, "wb") as out:
        out.write(b'{"result":{' + _dumps(items_name) + b":[")
        first = True
        for subtask in subtasks:
            if not subtask.result_key:
                continue
            with run.store.open(subtask.result_key, "rb") as part:
                for line in part:
                    line = line.strip()
                    if not line:
                        continue
                    count(json.loads(line))
                    out.write(line if first else b"," + line)
                    first = False
        out.write(b"]")
        for name, value in totals().items():
            out.write(b"," + _dumps(name) + b":" + _dumps(value))
        out.write(b'},"errors":' + _dumps(task_error_bodies(run)) + b"}")
    return TaskResult(key=key, content_type="application/json")
