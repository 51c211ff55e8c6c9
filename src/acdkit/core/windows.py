"""Time windows of the KPIs (docs/kpis.md): ``[start, end)`` in epoch seconds, named as
`acdkit stats --since` takes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from acdkit.core.errors import InvalidInput


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    name: str = ""

    def holds(self, ts: float | None) -> bool:
        return ts is not None and self.start <= ts < self.end


def parse_window(text: str, now: float, timezone: str) -> Window:
    """``today`` (since midnight in ``timezone``), ``15m``, ``60m``, ``2h`` (the last minutes
    or hours) or an ISO time (naive: in ``timezone``), each up to ``now``.

    Raises ``InvalidInput`` for anything else or a start in the future.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {timezone!r}") from None
    spec = text.strip().lower()
    if spec == "today":
        day = datetime.fromtimestamp(now, zone).date()
        start = datetime.combine(day, time(0), zone).timestamp()
    elif spec[:-1].isdigit() and spec[-1:] in ("m", "h") and int(spec[:-1]) > 0:
        start = now - timedelta(**{"minutes" if spec[-1] == "m" else "hours":
                                   int(spec[:-1])}).total_seconds()
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise InvalidInput(f"window {text!r}: use today, 15m, 60m, 2h or an ISO time"
                               ) from None
        start = (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()
    if start > now:
        raise InvalidInput(f"window {text!r} starts in the future")
    return Window(start, now, text.strip())
