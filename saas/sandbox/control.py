"""``SandboxControl``: a small Python client of the sandbox control API (tests, benchmarks, demo)."""

from __future__ import annotations

import requests


class SandboxError(RuntimeError):
    """The control API refused a request."""


class SandboxControl:
    """Drive the sandbox LINE platform: channels, virtual patients, inspection."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def _call(self, method: str, path: str, json: dict | None = None, **params):
        answer = self.http.request(
            method, f"{self.base_url}/_sandbox{path}", json=json, params=params or None, timeout=30
        )
        if answer.status_code >= 400:
            raise SandboxError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def reset(self) -> None:
        """Forget every channel, patient and message."""
        self._call("POST", "/reset")

    def add_channel(
        self,
        channel_id: str,
        secret: str,
        access_token: str,
        *,
        bot_user_id: str | None = None,
        webhook_url: str | None = None,
        plan: str = "free",
        monthly_limit: int | None = None,
        display_name: str | None = None,
    ) -> dict:
        """Register a Messaging API channel; returns its description (botUserId, basicId, ...)."""
        body = {"channelId": channel_id, "channelSecret": secret, "accessToken": access_token, "plan": plan}
        optional = {
            "botUserId": bot_user_id,
            "webhookUrl": webhook_url,
            "monthlyLimit": monthly_limit,
            "displayName": display_name,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._call("POST", "/channels", body)

    def add_login_channel(self, channel_id: str, secret: str, *, bot_channel_id: str | None = None) -> dict:
        """Register a LINE Login channel (for booking pages), linked to a Messaging API channel."""
        body = {"channelId": channel_id, "channelSecret": secret}
        if bot_channel_id:
            body["botChannelId"] = bot_channel_id
        return self._call("POST", "/login-channels", body)

    def channels(self) -> list[dict]:
        """Every channel."""
        return self._call("GET", "/channels")

    def configure(self, channel_id: str, **settings) -> dict:
        """Change settings: rate_limits, fail_next, monthly_limit, plan, latency_ms, webhook_url,
        reply_token_ttl_s, webhook_timeout_s, privacy_threshold, request_statistics, display_name."""
        return self._call("PUT", f"/channels/{channel_id}", settings)

    def set_webhook(self, channel_id: str, url: str | None) -> dict:
        """Point the channel's webhooks at ``url``."""
        return self.configure(channel_id, webhook_url=url)

    def add_patient(
        self,
        channel_id: str,
        display_name: str,
        user_id: str | None = None,
        picture_url: str | None = None,
        language: str = "ja",
    ) -> str:
        """Create a virtual patient (not yet a friend); returns the user id."""
        body = {"displayName": display_name, "userId": user_id, "pictureUrl": picture_url, "language": language}
        return self._call("POST", f"/channels/{channel_id}/patients", {k: v for k, v in body.items() if v})["userId"]

    def add_patients(self, channel_id: str, user_ids: list[str], *, following: bool = True) -> int:
        """Create many patients at once (already friends unless told otherwise), without webhooks."""
        return self._call(
            "POST", f"/channels/{channel_id}/patients/bulk", {"userIds": user_ids, "following": following}
        )["added"]

    def patients(self, channel_id: str) -> list[dict]:
        """Every virtual patient of the channel."""
        return self._call("GET", f"/channels/{channel_id}/patients")

    def follow(self, channel_id: str, user_id: str, *, deliver: bool = True) -> dict:
        """Add the account as a friend (or unblock): ``{"event", "status"}``."""
        return self._call("POST", f"/channels/{channel_id}/patients/{user_id}/follow", {"deliver": deliver})

    def unfollow(self, channel_id: str, user_id: str, *, deliver: bool = True) -> dict:
        """Block the account: ``{"event", "status"}``."""
        return self._call("POST", f"/channels/{channel_id}/patients/{user_id}/unfollow", {"deliver": deliver})

    def send_text(self, channel_id: str, user_id: str, text: str, *, deliver: bool = True) -> dict:
        """The patient sends text: ``{"event", "status"}``."""
        return self._call(
            "POST", f"/channels/{channel_id}/patients/{user_id}/messages", {"text": text, "deliver": deliver}
        )

    def postback(
        self, channel_id: str, user_id: str, data: str, params: dict | None = None, *, deliver: bool = True
    ) -> dict:
        """The patient taps a postback action: ``{"event", "status"}``."""
        body = {"data": data, "params": params, "deliver": deliver}
        return self._call("POST", f"/channels/{channel_id}/patients/{user_id}/postbacks", body)

    def send_media(self, channel_id: str, user_id: str, kind: str = "image", *, deliver: bool = True, **fields) -> dict:
        """The patient sends an image/video/audio/file (``data_base64``, ``content_type``, ``file_name``)."""
        body = {"type": kind, "deliver": deliver}
        names = {"data_base64": "dataBase64", "content_type": "contentType", "file_name": "fileName"}
        body.update({names.get(k, k): v for k, v in fields.items()})
        return self._call("POST", f"/channels/{channel_id}/patients/{user_id}/media", body)

    def unsend(self, channel_id: str, user_id: str, message_id: str, *, deliver: bool = True) -> dict:
        """The patient unsends a message: ``{"event", "status"}``."""
        body = {"messageId": message_id, "deliver": deliver}
        return self._call("POST", f"/channels/{channel_id}/patients/{user_id}/unsend", body)

    def open_message(self, channel_id: str, user_id: str, request_id: str) -> dict:
        """Simulate the patient seeing the messages of a send request (an impression)."""
        return self._call("POST", f"/channels/{channel_id}/patients/{user_id}/open", {"requestId": request_id})

    def click(self, channel_id: str, user_id: str, request_id: str, url: str) -> dict:
        """Simulate the patient tapping a URL in the messages of a send request."""
        return self._call(
            "POST", f"/channels/{channel_id}/patients/{user_id}/click", {"requestId": request_id, "url": url}
        )

    def deliver(self, channel_id: str, events: list[dict]) -> dict:
        """Send raw events as one signed webhook request: ``{"status"}``."""
        return self._call("POST", f"/channels/{channel_id}/deliver", {"events": events})

    def redeliver(self, channel_id: str, webhook_event_id: str) -> dict:
        """Deliver a past event again, marked isRedelivery: ``{"event", "status"}``."""
        return self._call("POST", f"/channels/{channel_id}/redeliver", {"webhookEventId": webhook_event_id})

    def inbox(self, channel_id: str, user_id: str) -> list[dict]:
        """Messages the bot sent to the patient, oldest first."""
        return self._call("GET", f"/channels/{channel_id}/patients/{user_id}/inbox")

    def chat(self, channel_id: str, user_id: str) -> list[dict]:
        """Both sides of the conversation as the phone shows it (coupon messages carry their ``coupon``)."""
        return self._call("GET", f"/channels/{channel_id}/patients/{user_id}/chat")["messages"]

    def requests(self, channel_id: str) -> list[dict]:
        """Log of Messaging API calls (method, path, status, retry_key, body, response)."""
        return self._call("GET", f"/channels/{channel_id}/requests")

    def webhook_deliveries(self, channel_id: str) -> list[dict]:
        """Webhook requests sent and the status codes the product answered."""
        return self._call("GET", f"/channels/{channel_id}/webhook-deliveries")
