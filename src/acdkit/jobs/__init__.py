"""RQ jobs: thin functions that take string ids, load state, call the core, write the outcome.

One module per job family; each job is enqueued by the dotted path of its name here, which
``jobqueue.JOB_FUNCTIONS`` accepts (so jobs queued under these names keep running)::

    acdkit.jobs.dial_back(task_id)    queue "callbacks", job id "dial-<task_id>-<n>"
    acdkit.jobs.promote_due()         queue the due callbacks, expire the overdue ones
    acdkit.jobs.recover()             re-enqueue dial_back for callbacks a dead worker left
    acdkit.jobs.transcribe(task_id)   queue "speech": a voice request's transcript
    acdkit.jobs.deliver_reply(task_id)   queue "requests": one delivery call of a reply

Each loads the settings (``config.load_settings``) and runs ``asyncio.run`` on its own
connection. What they run lives in ``services/``: the dial-back runner, settlement and
maintenance of callbacks, the voice-request bodies.
"""

from acdkit.jobs.callbacks import dial_back, promote_due, recover
from acdkit.jobs.voice import deliver_reply, transcribe

__all__ = ["deliver_reply", "dial_back", "promote_due", "recover", "transcribe"]
