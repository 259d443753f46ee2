"""A report's values read defensively (the report is data: a value may be missing, text, NaN
or huge), and formatted for the page."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def as_text(value: object) -> str:
    return "" if value is None else str(value)


def as_items(value: object) -> list:
    return value if isinstance(value, list) else []


def as_number(value: object) -> float | None:
    """A finite number, or None for null, text, booleans, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def as_plottable(value: object) -> float | None:
    """A number small enough to draw; larger ones are left out of the plots."""
    number = as_number(value)
    return number if number is not None and abs(number) < 1e15 else None


def formatted(value: object) -> str:
    number = as_number(value)
    if number is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    size = abs(number)
    if size >= 1000:
        return f"{number:,.0f}"
    if size >= 100:
        return f"{number:.1f}"
    if size >= 10:
        return f"{number:.2f}"
    return f"{number:.4f}"


def as_moment(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
