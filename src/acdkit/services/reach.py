"""An agent's reach, checked where it is set (CLI, phone, web login) and before each dial.

``check_agent_reach`` is the one check every login path calls: the core's ``check_reach``
(endpoint patterns, the dialing policy) and the do-not-call list kept in Redis.
docs/security-policy.md tells the rule.
"""

from __future__ import annotations

from acdkit.core.agents import ReachPolicy, check_reach
from acdkit.core.errors import NumberRejected
from acdkit.store.dnc import on_dnc
from acdkit.store.pool import Pool


async def check_agent_reach(pool: Pool, reach: str, policy: ReachPolicy) -> str:
    """Return ``reach`` as acdkit dials it (``PJSIP/<endpoint>`` or E.164).

    Raises ``InvalidInput`` (not an allowed endpoint, not a reach at all) or
    ``NumberRejected`` (the dialing policy, or the do-not-call list in Redis).
    """
    checked = check_reach(reach, policy)
    if not checked.startswith("PJSIP/") and await on_dnc(pool, checked):
        raise NumberRejected(reach, "do_not_call")
    return checked
