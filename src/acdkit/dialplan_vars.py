"""Asterisk vocabulary shared by Python and dialplan/*.conf: Stasis args, channel variables,
contexts. Change a name here and in dialplan/ together (a test checks they agree)."""

from __future__ import annotations

APP_NAME = "acdkit"

# Stasis(acdkit,<args>)
ARG_INBOUND = "inbound"  # inbound,<entry>
ARG_AGENT_LOGIN = "agent-login"

# Contexts defined in dialplan/extensions_acdkit.conf
FAILURE_CONTEXT = "acdkit-failure"
CALLBACK_QUEUE_CONTEXT = "acdkit-callback-queue"

# Channel variables
STATUS = "ACDKIT_STATUS"
QUEUE = "ACDKIT_QUEUE"
TASK_ID = "ACDKIT_TASK_ID"
PRIORITY = "ACDKIT_PRIORITY"
