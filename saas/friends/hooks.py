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
_follow_observers: list[Callable[..., None]] = []
_unfollow_observers: list[Callable[..., None]] = []
_tag_observers: list[Callable[..., None]] = []


def register_message_responder(responder: Responder) -> Responder:
    """Decorator: answer incoming text messages (auto-reply, FAQ, hand-off)."""
    if responder not in _message_responders:
        _message_responders.append(responder)
    return responder


_batch_preparers: list[Callable[..., None]] = []


def register_message_batch_preparer(preparer: Callable[..., None]) -> Callable[..., None]:
    """Decorator: ``preparer(clinic, friends)`` runs before the message responders answer a batch
    of events of these friends (``saas.friends.batch``): a responder loads what it needs for all
    of them at once, for the rest of the batch's transaction, instead of once per event."""
    if preparer not in _batch_preparers:
        _batch_preparers.append(preparer)
    return preparer


def prepare_message_batch(clinic, friends) -> None:
    for preparer in _batch_preparers:
        preparer(clinic, friends)


def register_follow_responder(responder: Responder) -> Responder:
    """Decorator: answer a new or returning friend (the greeting message)."""
    if responder not in _follow_responders:
        _follow_responders.append(responder)
    return responder


def register_follow_observer(observer: Callable[..., None]) -> Callable[..., None]:
    """Decorator: ``observer(clinic, friend, event)`` runs on every follow before the greeting
    (inflow sources attribute the friend and run their action). It must be idempotent."""
    if observer not in _follow_observers:
        _follow_observers.append(observer)
    return observer


def notify_followed(clinic, friend, event) -> None:
    """Run every follow observer, in registration order."""
    for observer in _follow_observers:
        observer(clinic, friend, event)


def register_unfollow_observer(observer: Callable[..., None]) -> Callable[..., None]:
    """Decorator: ``observer(clinic, friend)`` runs after an unfollow (block) is recorded. Idempotent."""
    if observer not in _unfollow_observers:
        _unfollow_observers.append(observer)
    return observer


def notify_unfollowed(clinic, friend) -> None:
    for observer in _unfollow_observers:
        observer(clinic, friend)


def register_tag_observer(observer: Callable[..., None]) -> Callable[..., None]:
    """Decorator: ``observer(friend, tag)`` runs when a tag is newly added to a friend."""
    if observer not in _tag_observers:
        _tag_observers.append(observer)
    return observer


def notify_tag_added(friend, tag) -> None:
    for observer in _tag_observers:
        observer(friend, tag)


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


# Postback handlers by ``data`` prefix (rich menu taps, buttons): the longest matching prefix wins.
_postback_handlers: dict[str, Responder] = {}


def register_postback_handler(prefix: str) -> Callable[[Responder], Responder]:
    """Decorator: handle postbacks whose ``data`` starts with ``prefix``.

    The handler is called as ``handler(clinic, friend, event)`` (``event["postback"]`` holds
    ``data`` and ``params``) and may return LINE message dicts to reply with.
    """

    def decorator(handler: Responder) -> Responder:
        _postback_handlers[prefix] = handler
        return handler

    return decorator


def postback_handler_for(data: str) -> Responder | None:
    """The handler registered for the longest prefix of ``data``, if any."""
    matching = [prefix for prefix in _postback_handlers if data.startswith(prefix)]
    return _postback_handlers[max(matching, key=len)] if matching else None


def answer_postback(clinic, friend, event) -> list[dict] | None:
    """Dispatch a postback event to its registered handler; None when nobody handles it."""
    data = (event.get("postback") or {}).get("data") or ""
    handler = postback_handler_for(data)
    return handler(clinic, friend, event) if handler else None


# Tag changes, announced after they are committed (rich menus per segment, scenarios started by a tag).
_tags_observers: list[Callable[[int, list[int]], None]] = []
_TAGS_CHANGED = "tsunagu_tags_changed"  # session.info: {clinic id: {friend ids}}


def register_tags_observer(observer: Callable[[int, list[int]], None]) -> Callable[[int, list[int]], None]:
    """Decorator: ``observer(clinic_id, friend_ids)`` runs after a commit that changed those
    friends' tags. It runs after the commit, so it may not use the session: enqueue a job."""
    if observer not in _tags_observers:
        _tags_observers.append(observer)
    return observer


def note_tags_changed(session, clinic_id: int, friend_ids) -> None:
    """Remember that these friends' tags change in this transaction (observers run on commit)."""
    if friend_ids:
        session.info.setdefault(_TAGS_CHANGED, {}).setdefault(clinic_id, set()).update(friend_ids)


def _announce_tags(session) -> None:
    pending = session.info.pop(_TAGS_CHANGED, None)
    for clinic_id, friend_ids in (pending or {}).items():
        for observer in _tags_observers:
            observer(clinic_id, sorted(friend_ids))


def _forget_tags(session) -> None:
    session.info.pop(_TAGS_CHANGED, None)


def install_session_events() -> None:
    """Run the tag observers after each commit (and forget the changes on rollback)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    if not event.contains(Session, "after_commit", _announce_tags):
        event.listen(Session, "after_commit", _announce_tags)
        event.listen(Session, "after_rollback", _forget_tags)


install_session_events()
