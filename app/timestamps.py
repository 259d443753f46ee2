"""Points in time as the API writes and reads them: ISO 8601, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def parse_moment(value: str) -> datetime:
    """An ISO 8601 date and time (UTC when it has no offset), between 1970 and 9999."""
    try:
        moment = datetime.fromisoformat(value.strip())
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if not EARLIEST <= moment <= LATEST:
            raise OverflowError
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"'{value}' is outside 1970–9999") from None
    except ValueError:
        raise ValueError(f"not an ISO 8601 date and time: '{value}'") from None


def iso(moment: datetime | None) -> str | None:
    """A time as ISO 8601 in UTC with a `Z` (None stays None)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None
