"""Filters and pagination shared by the list and count handlers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select

from luna_provider.errors import BAD_QUERY_PARAM


def parse_time(name: str, value: str | None) -> datetime | None:
    """Parse an ISO 8601 query parameter."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BAD_QUERY_PARAM(f"{name} must be an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.astimezone()


def parse_ids(name: str, value: str | None) -> list[int] | None:
    """Parse a comma-separated list of positive integer ids."""
    if value is None:
        return None
    try:
        ids = [int(part) for part in value.split(",")]
    except ValueError:
        raise BAD_QUERY_PARAM(f"{name} must be comma-separated integers") from None
    if not ids or any(item < 1 for item in ids) or len(ids) > 1000:
        raise BAD_QUERY_PARAM(f"{name} must hold 1 to 1000 positive ids")
    return ids


def time_bounds(column: Any, name: str, lower: str | None, upper: str | None) -> list:
    """Return conditions for ``name__gte`` / ``name__lt`` bounds of ``column``."""
    conditions = []
    if (start := parse_time(f"{name}__gte", lower)) is not None:
        conditions.append(column >= start)
    if (end := parse_time(f"{name}__lt", upper)) is not None:
        conditions.append(column < end)
    return conditions


def paginate(query: Select, page: int, page_size: int) -> Select:
    """Apply Luna's 1-based pagination."""
    return query.limit(page_size).offset((page - 1) * page_size)


def iso(value: datetime | None) -> str | None:
    """Format a timestamp as ISO 8601 with its offset."""
    return value.isoformat() if value is not None else None
