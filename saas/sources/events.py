"""A follow completes a pending scan: registered with saas.friends.hooks."""

from __future__ import annotations

from saas.friends.hooks import register_follow_observer
from saas.sources import services


@register_follow_observer
def attribute_follow(clinic, friend, event) -> None:
    """The friend signed in from a source's QR shortly before adding the clinic: record it."""
    services.attribute_pending(clinic, friend)
