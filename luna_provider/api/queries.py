"""Filters and pagination shared by the list and count handlers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select

from luna_provider.errors import BAD_QUERY_PARAM

#: PostgreSQL takes time zone offsets up to 15:59; RFC 3339 allows 23:59
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


def parse_time(name: str, value: str | None) -> datetime | None:
    """Parse an ISO 8601 query parameter."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise BAD_QUERY_PARAM(f"{name} must be an ISO 8601 date-time") from None
    parsed = parsed if parsed.tzinfo else parsed.astimezone()
    if abs(parsed.utcoffset() or timedelta()) > MAX_UTC_OFFSET:
        raise BAD_QUERY_PARAM(f"{name} has a time zone offset beyond 15:59")
    return parsed


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


#: PostgreSQL's OFFSET is a bigint
_MAX_OFFSET = 2**63 - 1


def paginate(query: Select, page: int, page_size: int) -> Select:
    """Apply Luna's 1-based pagination."""
    offset = (page - 1) * page_size
    if offset > _MAX_OFFSET:
        raise BAD_QUERY_PARAM("page is too large")
    return query.limit(page_size).offset(offset)


def iso(value: datetime | None) -> str | None:
    """Format a timestamp as ISO 8601 with its offset."""
    return value.isoformat() if value is not None else None
