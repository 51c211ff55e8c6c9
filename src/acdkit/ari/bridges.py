"""The bridges the Stasis app makes: a holding bridge per skill (music on hold), and bridges
made on demand (a call's, an agent line's, a supervisor's)."""

from __future__ import annotations

import asyncio

from acdkit.ari.control import AriControl


class Bridges:
    def __init__(self, control: AriControl, music_class: str) -> None:
        self.control = control
        self.music_class = music_class
        self._holding: set[str] = set()
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Asterisk may have restarted: the holding bridges are made again when next used."""
        self._holding.clear()

    @staticmethod
    def hold_id(skill: str) -> str:
        return f"hold-{skill}"

    async def hold(self, skill: str, channel_id: str) -> None:
        """Put a caller in the skill's holding bridge, which plays music on hold."""
        bridge_id = self.hold_id(skill)
        async with self._lock:
            if bridge_id not in self._holding:
                await self.ensure(bridge_id, "holding")
                await self.control.start_bridge_moh(bridge_id, self.music_class)
                self._holding.add(bridge_id)
        await self.control.add_to_bridge(bridge_id, [channel_id], role="participant")

    async def ensure(self, bridge_id: str, kind: str) -> None:
        """Create a bridge unless it exists (bridges outlive a restart of serve): one
        request, as Asterisk refuses a second bridge with the same id."""
        await self.control.create_bridge(bridge_id, kind=kind, name=bridge_id)
