"""Housekeeping of the service: results whose storage time is over."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class LunaPurgeExpiredResultsOperator(BaseOperator):
    """Delete stored task results whose ``result_storage_policy.ttl`` has passed, and leftover work files.

    :param luna_conn_id: Postgres connection to the service database.
    :param batch_size: results handled per transaction.
    """

    def __init__(self, *, luna_conn_id: str = "luna_default", batch_size: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.luna_conn_id = luna_conn_id
        self.batch_size = batch_size

    def execute(self, context: Any) -> int:
        from luna_provider.hooks.luna import LunaHook
        from luna_provider.lifecycle import purge_expired_results, purge_leftover_work

        hook = LunaHook(self.luna_conn_id)
        engine, store = hook.get_engine(), hook.get_object_store()
        purged = purge_expired_results(engine, store, self.batch_size)
        leftovers = purge_leftover_work(engine, store)
        self.log.info(
            "purged %d expired task results and the work files of %d ended tasks", purged, leftovers
        )
        return purged
