"""Async repository functions over a ``Database``: plain values in, plain values out.

Every function takes the ``Database`` first and a profile by name; writes run on the single writer
thread (``Database.run``), reads on the reader pool (``Database.read``). Nothing returned is an ORM
object. One module per concern; this package re-exports them all.
"""

from __future__ import annotations

from crmsync_desktop.store.repos.entity_configs import (
    delete_entity_config,
    list_entity_configs,
    save_entity_config,
    save_entity_configs,
)
from crmsync_desktop.store.repos.metadata import load_metadata_snapshot, replace_metadata_snapshot
from crmsync_desktop.store.repos.profiles import (
    delete_profile,
    get_profile,
    list_profiles,
    load_profile_config,
    rename_profile,
    replace_profile_config,
    save_profile,
)
from crmsync_desktop.store.repos.retries import (
    add_download_retries,
    clear_download_retries,
    count_download_retries,
    list_download_retries,
)
from crmsync_desktop.store.repos.runs import (
    append_log_lines,
    fail_interrupted_runs,
    finish_run,
    get_run,
    list_log_lines,
    list_runs,
    prune_runs,
    start_run,
)
from crmsync_desktop.store.repos.schedule import get_schedule_state, put_schedule_state, save_schedule_config
from crmsync_desktop.store.repos.sync_state import (
    count_record_states,
    delete_record_states,
    get_record_states,
    get_sync_state,
    list_record_states,
    list_sync_states,
    put_sync_state,
    reset_entity_state,
    upsert_record_states,
)
from crmsync_desktop.store.repos.transactions import (
    count_transactions,
    enqueue_transaction,
    enqueue_transactions,
    get_transaction,
    list_transactions,
    mark_error,
    mark_processed,
    next_deliverable_batch,
    retry_later,
    set_all_error_to_pending,
    set_transaction_status,
)
from crmsync_desktop.store.repos.upload_state import (
    commit_capture,
    fail_transactions,
    finish_delivery,
    forget_upload_baselines,
    get_upload_baselines,
    list_upload_baseline_ids,
    next_delivery_batch,
    prune_processed_transactions,
    record_client_writes,
    retry_transactions,
    supersede_transactions,
    undelivered_records,
)

__all__ = [
    "add_download_retries",
    "append_log_lines",
    "clear_download_retries",
    "commit_capture",
    "count_download_retries",
    "count_record_states",
    "count_transactions",
    "delete_entity_config",
    "delete_profile",
    "delete_record_states",
    "enqueue_transaction",
    "enqueue_transactions",
    "fail_interrupted_runs",
    "fail_transactions",
    "finish_delivery",
    "finish_run",
    "forget_upload_baselines",
    "get_profile",
    "get_record_states",
    "get_run",
    "get_schedule_state",
    "get_sync_state",
    "get_transaction",
    "get_upload_baselines",
    "list_download_retries",
    "list_entity_configs",
    "list_log_lines",
    "list_profiles",
    "list_record_states",
    "list_runs",
    "list_sync_states",
    "list_transactions",
    "list_upload_baseline_ids",
    "load_metadata_snapshot",
    "load_profile_config",
    "mark_error",
    "mark_processed",
    "next_deliverable_batch",
    "next_delivery_batch",
    "prune_processed_transactions",
    "record_client_writes",
    "prune_runs",
    "put_schedule_state",
    "put_sync_state",
    "rename_profile",
    "replace_metadata_snapshot",
    "replace_profile_config",
    "reset_entity_state",
    "retry_later",
    "retry_transactions",
    "save_entity_config",
    "save_entity_configs",
    "save_profile",
    "save_schedule_config",
    "set_all_error_to_pending",
    "set_transaction_status",
    "start_run",
    "supersede_transactions",
    "undelivered_records",
    "upsert_record_states",
]
