"""Periodic jobs as data, for RQ's cron (``flask cron``, see Procfile).

Each entry names a job function, its queue and when it runs. The jobs are safe to run twice.
``heal_deliveries`` is the send pipeline's sweeper: every ``DELIVERY_SWEEP_SECONDS`` (15) it
resumes what a killed worker, a Redis restart or a database blip left behind, so a send goes on
within a minute (the sweep interval plus ``DELIVERY_STALE_SECONDS``, 30 s, of missing heartbeat).
"""

from __future__ import annotations

import os

from rq import cron

from saas.analytics.jobs import catch_up_rollups, roll_up_dirty_days
from saas.api.jobs import purge_idempotency_keys
from saas.audit.jobs import purge_audit_events
from saas.billing.jobs import sweep_billing
from saas.delivery.jobs import heal_deliveries, pick_up_urgent_notices, reconcile_quotas, start_due_deliveries
from saas.friends.jobs import resync_all_friends
from saas.insights.jobs import sync_daily_insights, sync_insights
from saas.reminders.jobs import scan_due as scan_due_reminders
from saas.retention.jobs import purge_expired_data
from saas.steps.jobs import run_due_steps
from saas.webhooks.jobs import resume_webhook_events

SWEEP_SECONDS = int(os.environ.get("DELIVERY_SWEEP_SECONDS", "15"))  # the cron process's own setting

cron.register(pick_up_urgent_notices, "urgent", interval=30)
cron.register(heal_deliveries, "default", interval=SWEEP_SECONDS)
cron.register(start_due_deliveries, "default", interval=60)
cron.register(reconcile_quotas, "default", cron="17 * * * *")
cron.register(purge_audit_events, "default", cron="30 3 * * *")
cron.register(scan_due_reminders, "default", interval=300)
cron.register(resume_webhook_events, "webhooks", interval=60)
cron.register(resync_all_friends, "default", cron="40 4 * * *")
cron.register(purge_expired_data, "default", cron="45 3 * * *")
cron.register(run_due_steps, "default", interval=60)
cron.register(purge_idempotency_keys, "default", cron="50 3 * * *")
cron.register(sweep_billing, "default", interval=900)
cron.register(roll_up_dirty_days, "bulk", interval=60)  # the days commits marked
cron.register(catch_up_rollups, "bulk", cron="20 15 * * *")  # 00:20 in Japan: yesterday is complete
cron.register(sync_insights, "default", interval=600)  # LINE's statistics per request and unit
cron.register(sync_daily_insights, "default", cron="20 */6 * * *")  # yesterday's account figures
