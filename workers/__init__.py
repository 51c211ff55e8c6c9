"""Thin RQ entry points: ``rq worker -c workers.settings -S json --with-scheduler
--job-class acdkit.jobqueue.AcdJob`` (workers/settings.py).

``acdkit worker`` does the same with the right intervals and the maintenance thread; use this
package where the stock ``rq`` command is wanted (a supervisor that already runs it).
"""
