"""Recordings Asterisk stored (``RECORD FILE`` in dialplan mode), fetched over ARI HTTP."""

from __future__ import annotations

import contextlib

from acdkit.ari.client import AriClient
from acdkit.core.errors import AcdError, AriRequestFailed


async def fetch_recording(ari: AriClient, name: str) -> bytes | None:
    """A recording RECORD FILE stored, over ARI HTTP (deleted once fetched); None if none."""
    path = f"recordings/stored/{name}"
    try:
        audio = await ari.download(f"{path}/file")
    except AriRequestFailed as exc:
        if exc.status == 404:
            return None
        raise
    with contextlib.suppress(AcdError):
        await ari.request("DELETE", path, ok_statuses=(404,))
    return audio
