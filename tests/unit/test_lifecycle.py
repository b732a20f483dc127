from __future__ import annotations

import pytest

from luna_provider import lifecycle
from luna_provider.errors import TASK_FAILED, LunaError
from luna_provider.submission import store_task
from luna_provider.task_types import TaskType


@pytest.fixture
def task_id(engine, luna_env, account_id) -> int:
    return store_task(engine, TaskType.CLUSTERING, account_id, {"content": {}})


def test_final_status_is_never_left(engine, task_id) -> None:
    lifecycle.start_task(engine, task_id)
    lifecycle.cancel_task(engine, task_id)

    assert lifecycle.begin_collect(engine, task_id) is None
    assert lifecycle.finish_task(engine, task_id, result_key="k", content_type=None, ttl_days=None) is None
    assert lifecycle.fail_task(engine, task_id, TASK_FAILED("late")) is None
    assert lifecycle.start_task(engine, task_id) is None
    assert lifecycle.get_task(engine, task_id).task_status == 2
    with pytest.raises(LunaError) as raised:
        lifecycle.cancel_task(engine, task_id)
    assert raised.value.error_code == 28019


def test_progress_counts_done_subtasks_and_survives_retries(engine, task_id) -> None:
    lifecycle.start_task(engine, task_id)
    first, second, _ = lifecycle.create_subtasks(engine, task_id, [{}, {}, {}])

    for subtask_id in (first, second):
        lifecycle.start_subtask(engine, subtask_id)
        lifecycle.finish_subtask(engine, subtask_id, result_key=None, count_objects=1)
    lifecycle.finish_subtask(engine, second, result_key=None, count_objects=1)  # a retried report

    task = lifecycle.get_task(engine, task_id)
    assert (task.count_task_parts_done, task.count_task_parts_all) == (2, 3)
    assert lifecycle.get_subtask(engine, task_id, 2).subtask_status == 0


def test_split_retry_replaces_subtasks(engine, task_id) -> None:
    lifecycle.start_task(engine, task_id)
    lifecycle.create_subtasks(engine, task_id, [{}, {}, {}])

    ids = lifecycle.create_subtasks(engine, task_id, [{"a": 1}])

    task = lifecycle.get_task(engine, task_id)
    assert (task.count_task_parts_all, len(ids)) == (1, 1)
    assert lifecycle.get_subtask(engine, task_id, 0).content == {"a": 1}


def test_result_ttl_and_purge(engine, task_id, luna_env) -> None:
    from sqlalchemy import func, update

    from luna_provider.storage import ObjectStore
    from luna_provider.store.models import Task

    store = ObjectStore(luna_env.as_uri())
    store.put_json("results/a.json", {"result": 1})
    lifecycle.start_task(engine, task_id)
    task = lifecycle.finish_task(
        engine, task_id, result_key="results/a.json", content_type="application/json", ttl_days=3
    )
    assert task.result_expire_time is not None

    assert lifecycle.purge_expired_results(engine, store) == 0
    with engine.begin() as connection:
        connection.execute(update(Task).values(result_expire_time=func.now()))
    assert lifecycle.purge_expired_results(engine, store) == 1

    assert not store.exists("results/a.json")
    assert lifecycle.get_task(engine, task_id).result_key is None


def test_progress_of_subtasks_finishing_together(engine, task_id) -> None:
    import threading

    lifecycle.start_task(engine, task_id)
    ids = lifecycle.create_subtasks(engine, task_id, [{}] * 8)
    for subtask_id in ids:
        lifecycle.start_subtask(engine, subtask_id)
    barrier = threading.Barrier(len(ids))

    def finish(subtask_id: int) -> None:
        barrier.wait()
        lifecycle.finish_subtask(engine, subtask_id, result_key=None, count_objects=1)

    threads = [threading.Thread(target=finish, args=(subtask_id,)) for subtask_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    task = lifecycle.get_task(engine, task_id)
    assert (task.count_task_parts_done, task.count_task_parts_all) == (8, 8)


def test_leftover_work_of_ended_tasks_is_purged(engine, luna_env, account_id) -> None:
    from luna_provider.storage import ObjectStore

    store = ObjectStore(luna_env.as_uri())
    running = store_task(engine, TaskType.CLUSTERING, account_id, {"content": {}})
    cancelled = store_task(engine, TaskType.CLUSTERING, account_id, {"content": {}})
    lifecycle.cancel_task(engine, cancelled)
    for task_id in (running, cancelled, 999):
        store.put_json(f"work/task_{task_id}/objects.ids", [])

    assert lifecycle.purge_leftover_work(engine, store) == 2

    assert store.exists(f"work/task_{running}/objects.ids")
    assert not store.exists(f"work/task_{cancelled}")
    assert not store.exists("work/task_999")
