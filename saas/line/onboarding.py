"""Connecting a clinic's LINE channel: verify the token, store credentials, set the webhook.

The channel secret cannot be checked against LINE directly; LINE's webhook test proves it:
LINE signs its test request with the secret, and our endpoint answers 401 when it differs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from flask import current_app
from flask_babel import gettext as _

from saas.extensions import db
from saas.line import client
from saas.line.errors import LineError, LineRequestRejected

log = logging.getLogger(__name__)


class OnboardingError(RuntimeError):
    """The channel could not be connected; the message is written for clinic staff."""


@dataclass(frozen=True)
class ConnectionCheck:
    bot: client.BotInfo | None
    webhook_url: str
    webhook: client.WebhookTest | None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.bot and self.webhook and self.webhook.success and not self.problem)


def webhook_url(clinic) -> str:
    """The clinic's own webhook URL, to be registered in the LINE Developers console."""
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/webhooks/line/{clinic.webhook_key}"


def verify_token(access_token: str) -> client.BotInfo:
    """Bot info for the token, or OnboardingError with a message staff can act on."""
    try:
        return client.bot_info(client.Channel(line_access_token=access_token))
    except LineRequestRejected as exc:
        raise OnboardingError(
            _("チャネルアクセストークンが無効です（LINEの応答: %(message)s）。", message=exc.message)
        ) from exc
    except LineError as exc:
        raise OnboardingError(_("LINEに接続できませんでした。時間をおいて再度お試しください。")) from exc


def connect_channel(clinic, channel_id: str, channel_secret: str, access_token: str) -> ConnectionCheck:
    """Verify the token, store the credentials (encrypted), then set and test the webhook."""
    channel_id, channel_secret, access_token = channel_id.strip(), channel_secret.strip(), access_token.strip()
    bot = verify_token(access_token)
    clinic.line_channel_id = channel_id
    clinic.line_channel_secret = channel_secret
    clinic.line_access_token = access_token
    clinic.line_bot_user_id = bot.user_id
    clinic.line_basic_id = bot.basic_id
    db.session.commit()  # the webhook test below reaches our endpoint, which reads the secret
    check = check_connection(clinic, set_webhook=True, bot=bot)
    _resync_friends_later(clinic)
    return check


def _resync_friends_later(clinic) -> None:
    """Friends who added the account before it was connected come from LINE's follower list."""
    from saas.queues import DEFAULT, get_queue

    try:
        get_queue(DEFAULT).enqueue("saas.friends.jobs.resync_friends", clinic.id, job_id=f"resync-friends-{clinic.id}")
    except (redis.RedisError, OSError):  # the daily re-sync catches up
        log.warning("friend re-sync of clinic %s not queued: Redis unavailable", clinic.id)


def check_connection(clinic, *, set_webhook: bool = False, bot: client.BotInfo | None = None) -> ConnectionCheck:
    """Ask LINE whether the stored token works and the webhook reaches us."""
    url = webhook_url(clinic)
    try:
        bot = bot or client.bot_info(clinic)
        if set_webhook:
            client.set_webhook_endpoint(clinic, url)
        test = client.test_webhook_endpoint(clinic)
    except LineError as exc:
        return ConnectionCheck(bot=bot, webhook_url=url, webhook=None, problem=exc.message)
    return ConnectionCheck(bot=bot, webhook_url=url, webhook=test, problem=_webhook_problem(test))


def _webhook_problem(test: client.WebhookTest) -> str:
    if test.success:
        return ""
    if test.status_code == 401:
        return _("Webhookの署名検証に失敗しました。チャネルシークレットが正しいか確認してください。")
    if test.status_code is None:
        return _("LINEからWebhook URLに接続できませんでした（%(reason)s）。", reason=test.reason or test.detail)
    return _("Webhookのテストに失敗しました（HTTP %(status)s）。", status=test.status_code)


def disconnect_channel(clinic) -> None:
    """Forget the channel's credentials (the webhook then answers 401 to everything)."""
    clinic.line_channel_secret = None
    clinic.line_access_token = None
    db.session.commit()
