"""``StripeSandboxControl``: a small Python client of the stand-in's control API."""

from __future__ import annotations

import requests


class StripeSandboxControl:
    """Drive the Stripe stand-in: webhook endpoint, clock, declined cards, events."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/")
        self.http = requests.Session()

    def _call(self, method: str, path: str, json: dict | None = None, **params):
        answer = self.http.request(method, f"{self.url}/_stripe{path}", json=json, params=params or None, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def reset(self) -> None:
        """Forget every object and event."""
        self._call("POST", "/reset")

    def set_webhook(self, url: str | None, secret: str | None, *, hold: bool = False) -> dict:
        """Send events to ``url`` signed with ``secret`` (``hold``: keep them until ``send_events``)."""
        return self._call("PUT", "/webhook", {"url": url, "secret": secret, "hold": hold})

    def hold(self, hold: bool = True) -> list[str]:
        """Keep events from now on (or stop keeping them); returns ids released unsent."""
        return self._call("POST", "/hold", {"hold": hold})["released"]

    def events(self) -> list[dict]:
        """Every event, oldest first, with its delivery attempts."""
        return self._call("GET", "/events")["events"]

    def held(self) -> list[str]:
        return self._call("GET", "/events")["held"]

    def event(self, event_id: str) -> dict:
        return self._call("GET", f"/events/{event_id}")

    def signed(self, event_id: str, timestamp: int | None = None) -> dict:
        """``{"payload", "signature"}``: the event's exact bytes and a Stripe-Signature header."""
        return self._call("GET", f"/events/{event_id}/signed", **({"t": timestamp} if timestamp else {}))

    def send_events(self, ids: list[str]) -> list[dict]:
        """Deliver these events now, in this order: ``[{"id", "status"}]``."""
        return self._call("POST", "/events/send", {"ids": ids})["results"]

    def advance(self, *, days: float = 0, seconds: int = 0) -> dict:
        """Move the clock; renewals invoice and charge. ``{"events", "results"}``."""
        return self._call("POST", "/advance", {"days": days, "seconds": seconds})

    def decline_next(self, customer_id: str, count: int = 1) -> dict:
        """The customer's card declines the next ``count`` charges."""
        return self._call("POST", f"/customers/{customer_id}/decline", {"count": count})

    def pay(self, customer_id: str) -> dict:
        """A working card: the customer's open invoices are charged again."""
        return self._call("POST", f"/customers/{customer_id}/pay")

    def requests(self) -> list[dict]:
        """Log of /v1 calls: method, path, params."""
        return self._call("GET", "/requests")

    def subscriptions(self) -> list[dict]:
        return self._call("GET", "/subscriptions")
