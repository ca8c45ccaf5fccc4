"""Extension points of the conversation: other capabilities answer patients through these.

A responder is ``responder(clinic, friend, event) -> list[dict] | None``: LINE message
objects (as dicts) to reply with, or None to pass. Responders run in registration order
inside the worker that handles the webhook event; the first non-None answer is sent with
the event's reply token.
"""

from __future__ import annotations

from collections.abc import Callable

Responder = Callable[..., list[dict] | None]

_message_responders: list[Responder] = []
_follow_responders: list[Responder] = []


def register_message_responder(responder: Responder) -> Responder:
    """Decorator: answer incoming text messages (auto-reply, FAQ, hand-off)."""
    if responder not in _message_responders:
        _message_responders.append(responder)
    return responder


def register_follow_responder(responder: Responder) -> Responder:
    """Decorator: answer a new or returning friend (the greeting message)."""
    if responder not in _follow_responders:
        _follow_responders.append(responder)
    return responder


def first_answer(responders: list[Responder], *args) -> list[dict] | None:
    for responder in responders:
        answer = responder(*args)
        if answer:
            return answer
    return None


def answer_message(clinic, friend, event) -> list[dict] | None:
    return first_answer(_message_responders, clinic, friend, event)


def answer_follow(clinic, friend, event) -> list[dict] | None:
    return first_answer(_follow_responders, clinic, friend, event)
