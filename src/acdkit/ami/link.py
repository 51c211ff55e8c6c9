"""The AMI connection (panoramisk 1.4) with the pitfalls of
docs/architecture.md §7 handled.

- Reconnects with backoff (1, 2, 4, 5, 5 ... s) after a drop or a refused connect, and logs
  ``AMI connected`` / ``AMI disconnected`` once each.
- Every action has a timeout of its own (panoramisk's futures have none; without
  ``read=system`` they never resolve).
- panoramisk re-sends the actions in flight at a drop once Asterisk sends ``FullyBooted``.
  That is fine for queries, not for ``Originate``: at a drop every pending Originate is
  failed with ``AmiUnavailable``, so none is sent twice. Asterisk may have placed it all the
  same: the dial-back takes its outcome as unknown and looks for the attempt's ChannelId on
  Asterisk before the retry policy may dial again (ami/dialback.py, docs/dial-back.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from panoramisk import Manager

from acdkit.config import AmiSettings
from acdkit.core.errors import AmiUnavailable

log = logging.getLogger(__name__)

EventHandler = Callable[[Mapping[str, str]], None]
_BACKOFF = (1, 2, 4, 5)
_NOT_RESENT = frozenset({"originate"})


def plain_event(message: Mapping[str, Any]) -> dict[str, str]:
    """An AMI message as plain ``header: text``. panoramisk turns a repeated header into a
    list (Asterisk repeats ``ChanVariable``; a garbled stream can repeat any header): keep
    its first value, so every handler reads text (found by tests/fuzz, target ``ami``)."""
    plain: dict[str, str] = {}
    for key, value in message.items():
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(key, str) and isinstance(first, str):
            plain[key] = first
    return plain


class _Manager(Manager):  # type: ignore[misc]  # panoramisk is untyped
    """panoramisk's Manager with a growing reconnect delay."""

    failures = 0

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        failed = f.exception() is not None if not f.cancelled() else True
        self.failures = self.failures + 1 if failed else 0
        self.reconnect_timeout = _BACKOFF[min(self.failures, len(_BACKOFF) - 1)]
        super().connection_made(f)


class AmiLink:
    """One AMI connection: ``start()``, then ``action()``; events go to ``on_event``."""

    def __init__(self, settings: AmiSettings, on_event: EventHandler,
                 on_login: Callable[[], None] | None = None,
                 action_timeout: float = 10.0) -> None:
        self.settings = settings
        self.on_event = on_event
        self.on_login_hook = on_login
        self.action_timeout = action_timeout
        self.connected = asyncio.Event()
        self.logins = 0
        self.manager = _Manager(
            host=settings.host, port=settings.port, username=settings.username,
            secret=settings.secret.reveal(), ping_delay=10, ping_interval=10,
            reconnect_timeout=1, on_login=self._logged_in, on_disconnect=self._dropped,
            log=logging.getLogger("acdkit.ami.panoramisk"))
        self.manager.register_event("*", self._event)

    async def start(self) -> None:
        """Connect (in the background: a refused connect is retried with backoff)."""
        self.manager.loop = asyncio.get_running_loop()
        self.manager.connect()

    def close(self) -> None:
        self.manager.close()
        self.connected.clear()

    def _logged_in(self, _manager: Manager) -> None:
        self.logins += 1
        self.connected.set()
        log.info("AMI connected to %s:%d as %s", self.settings.host, self.settings.port,
                 self.settings.username)
        if self.on_login_hook is not None:
            self.on_login_hook()

    def _dropped(self, manager: Manager, exc: object) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was:
            log.warning("AMI disconnected from %s:%d (%s); reconnecting", self.settings.host,
                        self.settings.port, exc)
        for action in list(manager.awaiting_actions):
            if str(action.get("Action", "")).lower() in _NOT_RESENT:
                manager.awaiting_actions.remove(action)
                if not action.future.done():
                    action.future.set_exception(
                        AmiUnavailable("AMI connection lost while the Originate was in flight"))

    def _event(self, _manager: Manager, event: Mapping[str, str]) -> None:
        try:
            self.on_event(plain_event(event))
        except Exception:
            log.exception("AMI event %s: handler failed", event.get("Event"))

    async def action(self, action: Mapping[str, str | Sequence[str]],
                     timeout: float | None = None) -> Any:
        """Send ``action`` and return its reply (a list for multi-message replies).
        Raises ``AmiUnavailable`` when not connected, on a drop, or after ``timeout``."""
        if not self.connected.is_set():
            raise AmiUnavailable(f"AMI not connected ({action.get('Action')})")
        future = self.manager.send_action(dict(action))
        try:
            # asyncio.timeout, not wait_for: docs/architecture.md §7
            async with asyncio.timeout(timeout or self.action_timeout):
                return await future
        except TimeoutError:
            raise AmiUnavailable(f"AMI {action.get('Action')}: no reply in "
                                 f"{timeout or self.action_timeout:g} s") from None
