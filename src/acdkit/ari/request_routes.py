"""ARI requests counted by method and route (``acdkit_ari_requests_total`` on /metrics).

A route is the request's path with every id templated: ``channels/{id}/play/{id}``, never
a channel, bridge or playback id. The words of ARI's REST API stay; any other segment is an
id, and paths are cut after ``MAX_DEPTH`` segments, so the set of routes is bounded
whatever the ids (docs/kpis.md, "Metrics").
"""

from __future__ import annotations

from collections import Counter

ID = "{id}"
MAX_DEPTH = 6
METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
# The resources and the fixed path words of ARI's REST API (Asterisk 22).
WORDS = frozenset({
    "applications", "asterisk", "bridges", "channels", "deviceStates", "endpoints", "events",
    "mailboxes", "playbacks", "recordings", "sounds",
    "info", "ping", "variable", "config", "dynamic", "logging", "modules", "rotate",
    "create", "externalMedia", "answer", "ring", "dtmf", "mute", "hold", "moh", "silence",
    "play", "record", "snoop", "dial", "continue", "move", "redirect", "rtp_statistics",
    "transfer_progress", "addChannel", "removeChannel", "videoSource", "stored", "live",
    "file", "copy", "stop", "pause", "unpause", "unmute", "cancel", "subscription",
    "sendMessage", "control", "user", "eventFilter", "transfer",
})

RequestCounts = Counter[tuple[str, str]]  # (method, route) -> requests sent


def route_of(path: str) -> str:
    """``path`` (relative to ``/ari``, query excluded) with its ids templated."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    route = [p if p in WORDS else ID for p in parts[:MAX_DEPTH]]
    return "/".join(route) + ("/..." if len(parts) > MAX_DEPTH else "")


def count(counts: RequestCounts, method: str, path: str) -> None:
    """One more request ``method path`` in ``counts``."""
    counts[(method if method in METHODS else "other", route_of(path))] += 1
