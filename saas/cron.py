"""Periodic jobs as data, for RQ's cron (``rq cron saas.cron``, see Procfile).

Each entry names a job function, its queue and when it runs. The jobs are safe to run twice.
"""

from __future__ import annotations

from rq import cron

from saas.audit.jobs import purge_audit_events
from saas.delivery.jobs import (
    pick_up_urgent_notices,
    reconcile_quotas,
    resume_stalled_chunks,
    start_due_deliveries,
)
from saas.reminders.jobs import scan_due as scan_due_reminders

cron.register(pick_up_urgent_notices, "urgent", interval=30)
cron.register(start_due_deliveries, "default", interval=60)
cron.register(resume_stalled_chunks, "default", interval=300)
cron.register(reconcile_quotas, "default", cron="17 * * * *")
cron.register(purge_audit_events, "default", cron="30 3 * * *")
cron.register(scan_due_reminders, "default", interval=300)
