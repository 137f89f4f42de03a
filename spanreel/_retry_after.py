"""HTTP ``Retry-After`` parsing, shared by the collector's forwarders and replay's retries."""

from __future__ import annotations

import datetime as _dt
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]


def parse_retry_after(value: str | None, now: _dt.datetime | None = None) -> float | None:
    """An HTTP ``Retry-After`` value → seconds to wait (≥ 0), or ``None`` when absent or unreadable.

    Accepts delta-seconds (``"120"``) and HTTP-dates (``"Wed, 21 Oct 2015 07:28:00 GMT"``), as
    RFC 9110 §10.2.3 defines them; ``now`` (aware, default: the current UTC time) is the reference
    for an HTTP-date.
    """
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return max(0.0, (when - (now or _dt.datetime.now(_dt.UTC))).total_seconds())
