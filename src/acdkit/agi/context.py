"""What the FastAGI routes share (agi/routes.py, agi/my_requests.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from acdkit.config import Settings
from acdkit.core.members import MemberBoard
from acdkit.core.numbers import NumberPolicy
from acdkit.ports import Clock, JobQueue
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore


@dataclass
class RouteContext:
    """What the routes share: settings, the pool and stores, the AMI member board (None
    when ``acdkit agi`` runs without AMI)."""

    settings: Settings
    pool: Pool
    callbacks: CallbackStore
    numbers: NumberPolicy
    clock: Clock
    ratings: RatingStore
    members: MemberBoard | None = None
    jobs: JobQueue | None = None  # voice-request: the transcription job
    fetch: Callable[[str], Awaitable[bytes | None]] | None = None  # a stored recording (ARI)
