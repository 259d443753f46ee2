"""Durations on the wire: ISO 8601 (`PT10M`, `P1DT2H`) or .NET TimeSpan (`00:10:00`, `1.02:00:00`);
always written back as ISO 8601."""

from __future__ import annotations

import re
from datetime import timedelta

_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_SPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse(text: object) -> timedelta:
    """Parse a duration; raises ValueError with a message for anything else."""
    try:
        return _parse(text)
    except OverflowError:
        raise ValueError(f"'{text}' is too long a duration") from None


def _parse(text: object) -> timedelta:
    if not isinstance(text, str):
        raise ValueError("a duration must be a string such as 'PT10M' or '00:10:00'")
    value = text.strip()
    iso = _ISO.match(value.upper())
    if iso and value.upper() not in ("P", "PT") and not value.upper().endswith("T"):
        parts = {k: float(v) for k, v in iso.groupdict(default="0").items()}
        return timedelta(
            weeks=parts["w"],
            days=parts["d"],
            hours=parts["h"],
            minutes=parts["m"],
            seconds=parts["s"],
        )
    span = _SPAN.match(value)
    if span and int(span["m"]) < 60 and float(span["s"]) < 60 and int(span["h"]) < 24:
        return timedelta(
            days=int(span["d"] or 0),
            hours=int(span["h"]),
            minutes=int(span["m"]),
            seconds=float(span["s"]),
        )
    raise ValueError(f"'{text}' is not a duration (use ISO 8601 such as 'PT10M' or 'hh:mm:ss')")


def format_iso(delta: timedelta) -> str:
    """`timedelta(minutes=10)` → `PT10M`; `timedelta(days=1, hours=2)` → `P1DT2H`."""
    total = delta.total_seconds()
    if total == 0:
        return "PT0S"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{int(days)}D" if days else "")
    time = ""
    if hours:
        time += f"{int(hours)}H"
    if minutes:
        time += f"{int(minutes)}M"
    if seconds:
        time += (f"{seconds:.3f}".rstrip("0").rstrip(".")) + "S"
    return out + ("T" + time if time else "")
