"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-03 16:19:09.448686
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("notification_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("callback", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("notification_id"),
    )
    op.create_index(op.f("ix_notifications_task_id"), "notifications", ["task_id"], unique=False)
    op.create_index(
        op.f("ix_notifications_next_attempt_time"), "notifications", ["next_attempt_time"], unique=False
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("handler_id", sa.UUID(), nullable=True),
        sa.Column("source", sa.String(length=128), nullable=True),
        sa.Column("stream_id", sa.UUID(), nullable=True),
        sa.Column("track_id", sa.String(length=36), nullable=True),
        sa.Column("external_id", sa.String(length=36), nullable=True),
        sa.Column("user_data", sa.String(length=128), nullable=False),
        sa.Column("tags", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("meta", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("face_id", sa.UUID(), nullable=True),
        sa.Column("age", sa.Float(), nullable=True),
        sa.Column("gender", sa.Integer(), nullable=True),
        sa.Column("emotion", sa.Integer(), nullable=True),
        sa.Column("ethnic_group", sa.Integer(), nullable=True),
        sa.Column("mask", sa.Integer(), nullable=True),
        sa.Column("liveness", sa.Integer(), nullable=True),
        sa.Column("city", sa.String(length=36), nullable=True),
        sa.Column("area", sa.String(length=36), nullable=True),
        sa.Column("district", sa.String(length=36), nullable=True),
        sa.Column("street", sa.String(length=36), nullable=True),
        sa.Column("house_number", sa.String(length=36), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("top_match", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("match_result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("attach_result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("face_detections", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_events_account_create", "events", ["account_id", "create_time"], unique=False)
    op.create_table(
        "faces",
        sa.Column("face_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=True),
        sa.Column("user_data", sa.String(length=128), nullable=False),
        sa.Column("external_id", sa.String(length=36), nullable=True),
        sa.Column("avatar", sa.Text(), nullable=False),
        sa.Column("age", sa.Float(), nullable=True),
        sa.Column("gender", sa.Integer(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "last_update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("face_id"),
    )
    op.create_index("ix_faces_account_create", "faces", ["account_id", "create_time"], unique=False)
    op.create_index(op.f("ix_faces_external_id"), "faces", ["external_id"], unique=False)
    op.create_table(
        "lists",
        sa.Column("list_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("user_data", sa.String(length=128), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "last_update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("list_id"),
    )
    op.create_index(op.f("ix_lists_account_id"), "lists", ["account_id"], unique=False)
    op.create_table(
        "schedules",
        sa.Column("schedule_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("task_type", sa.Integer(), nullable=False),
        sa.Column("task", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("trigger", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("behaviour", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_run_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "last_update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("schedule_id"),
    )
    op.create_index(op.f("ix_schedules_account_id"), "schedules", ["account_id"], unique=False)
    op.create_index(op.f("ix_schedules_create_time"), "schedules", ["create_time"], unique=False)
    op.create_table(
        "event_descriptors",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("descriptor_type", sa.String(length=8), nullable=False),
        sa.Column("descriptor_version", sa.Integer(), nullable=False),
        sa.Column("descriptor", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.event_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("event_id", "descriptor_type", "descriptor_version"),
    )
    op.create_table(
        "face_descriptors",
        sa.Column("face_id", sa.UUID(), nullable=False),
        sa.Column("descriptor_version", sa.Integer(), nullable=False),
        sa.Column("descriptor", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["faces.face_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("face_id", "descriptor_version"),
    )
    op.create_table(
        "list_faces",
        sa.Column("list_id", sa.UUID(), nullable=False),
        sa.Column("face_id", sa.UUID(), nullable=False),
        sa.Column("link_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["face_id"], ["faces.face_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["list_id"], ["lists.list_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("list_id", "face_id"),
    )
    op.create_index(op.f("ix_list_faces_face_id"), "list_faces", ["face_id"], unique=False)
    op.create_table(
        "samples",
        sa.Column("sample_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("sample_type", sa.String(length=8), nullable=False),
        sa.Column("face_id", sa.UUID(), nullable=True),
        sa.Column("event_id", sa.UUID(), nullable=True),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.event_id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["face_id"], ["faces.face_id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("sample_id"),
    )
    op.create_index(op.f("ix_samples_account_id"), "samples", ["account_id"], unique=False)
    op.create_index(op.f("ix_samples_event_id"), "samples", ["event_id"], unique=False)
    op.create_index(op.f("ix_samples_face_id"), "samples", ["face_id"], unique=False)
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("task_type", sa.Integer(), nullable=False),
        sa.Column("task_status", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=128), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("notification_policy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("result_storage_policy", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("result_id", sa.UUID(), nullable=True),
        sa.Column("result_key", sa.Text(), nullable=True),
        sa.Column("result_content_type", sa.String(length=64), nullable=True),
        sa.Column("result_expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("count_task_parts_done", sa.Integer(), nullable=False),
        sa.Column("count_task_parts_all", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "last_update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_index("ix_tasks_account_create", "tasks", ["account_id", "create_time"], unique=False)
    op.create_index(op.f("ix_tasks_end_time"), "tasks", ["end_time"], unique=False)
    op.create_index(op.f("ix_tasks_result_id"), "tasks", ["result_id"], unique=False)
    op.create_index(op.f("ix_tasks_schedule_id"), "tasks", ["schedule_id"], unique=False)
    op.create_index(op.f("ix_tasks_task_status"), "tasks", ["task_status"], unique=False)
    op.create_index(op.f("ix_tasks_task_type"), "tasks", ["task_type"], unique=False)
    op.create_table(
        "subtasks",
        sa.Column("subtask_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("subtask_status", sa.Integer(), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("count_objects", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.UUID(), nullable=True),
        sa.Column("result_key", sa.Text(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "last_update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.task_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subtask_id"),
        sa.UniqueConstraint("task_id", "part_index"),
    )
    op.create_index(op.f("ix_subtasks_task_id"), "subtasks", ["task_id"], unique=False)
    op.create_table(
        "task_errors",
        sa.Column("error_id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("subtask_id", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("additional_info", sa.Text(), nullable=True),
        sa.Column("error_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["subtask_id"], ["subtasks.subtask_id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.task_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("error_id"),
    )
    op.create_index(op.f("ix_task_errors_error_code"), "task_errors", ["error_code"], unique=False)
    op.create_index(op.f("ix_task_errors_error_time"), "task_errors", ["error_time"], unique=False)
    op.create_index(op.f("ix_task_errors_task_id"), "task_errors", ["task_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_next_attempt_time"), table_name="notifications")
    op.drop_index(op.f("ix_notifications_task_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(op.f("ix_task_errors_task_id"), table_name="task_errors")
    op.drop_index(op.f("ix_task_errors_error_time"), table_name="task_errors")
    op.drop_index(op.f("ix_task_errors_error_code"), table_name="task_errors")
    op.drop_table("task_errors")
    op.drop_index(op.f("ix_subtasks_task_id"), table_name="subtasks")
    op.drop_table("subtasks")
    op.drop_index(op.f("ix_tasks_task_type"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_task_status"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_schedule_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_result_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_end_time"), table_name="tasks")
    op.drop_index("ix_tasks_account_create", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index(op.f("ix_samples_face_id"), table_name="samples")
    op.drop_index(op.f("ix_samples_event_id"), table_name="samples")
    op.drop_index(op.f("ix_samples_account_id"), table_name="samples")
    op.drop_table("samples")
    op.drop_index(op.f("ix_list_faces_face_id"), table_name="list_faces")
    op.drop_table("list_faces")
    op.drop_table("face_descriptors")
    op.drop_table("event_descriptors")
    op.drop_index(op.f("ix_schedules_create_time"), table_name="schedules")
    op.drop_index(op.f("ix_schedules_account_id"), table_name="schedules")
    op.drop_table("schedules")
    op.drop_index(op.f("ix_lists_account_id"), table_name="lists")
    op.drop_table("lists")
    op.drop_index(op.f("ix_faces_external_id"), table_name="faces")
    op.drop_index("ix_faces_account_create", table_name="faces")
    op.drop_table("faces")
    op.drop_index("ix_events_account_create", table_name="events")
    op.drop_table("events")
