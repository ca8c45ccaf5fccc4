"""Wiring: each unfollow enqueues its block attribution (the webhook worker does no more)."""

from __future__ import annotations

import logging

import redis

from saas.friends import hooks
from saas.queues import DEFAULT, get_queue

log = logging.getLogger(__name__)


@hooks.register_unfollow_observer
def attribute_later(clinic, friend) -> None:
    if friend.blocked_at is None:
        return
    at = friend.blocked_at.isoformat()
    try:
        get_queue(DEFAULT).enqueue(
            "saas.insights.jobs.attribute_block",
            clinic.id,
            friend.id,
            at,
            job_id=f"block-attribution-{clinic.id}-{friend.id}-{int(friend.blocked_at.timestamp())}",
        )
    except (redis.RedisError, OSError) as error:  # the block itself is recorded; only its attribution is lost
        log.warning("block of friend %s not attributed: %s", friend.id, error)
