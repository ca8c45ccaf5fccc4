"""Answers go out within the reply token's life, or by push: never lost, never twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.common import utcnow
from saas.extensions import db
from saas.friends import hooks
from saas.friends.models import Direction, Message
from saas.quota.usage import usage
from saas.tenancy.scoping import tenant_scope
from saas.webhooks.jobs import handle_webhook_events
from saas.webhooks.models import WebhookEvent
from tests.webhooks.support import connect_clinic, run_jobs

ANSWER = [{"type": "text", "text": "受け付けました"}]


def _answers(clinic) -> list[tuple[str, str]]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        rows = db.session.scalars(sa.select(Message).where(Message.direction == Direction.OUT).order_by(Message.id))
        return [(m.text, m.via) for m in rows]


def _states(clinic) -> set[str]:
    with tenant_scope(clinic.id):
        return set(db.session.scalars(sa.select(WebhookEvent.state)))


def _used(clinic) -> int:
    with tenant_scope(clinic.id):
        return usage(clinic.id).used


def _patient(sandbox, channel, name="田中 葵"):
    patient = sandbox.add_patient(channel, name)
    sandbox.follow(channel, patient, deliver=False)
    return patient


def test_an_answer_within_the_tokens_life_is_a_free_reply(sandbox, live_server, first_responders):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: ANSWER)
    patient = _patient(sandbox, channel)
    sandbox.send_text(channel, patient, "明日予約できますか")
    run_jobs()
    assert _answers(clinic) == [("受け付けました", "reply")]
    assert [m["via"] for m in sandbox.inbox(channel, patient)] == ["reply"]
    assert _used(clinic) == 0


def test_an_expired_token_is_answered_by_a_counted_push_shown_in_the_conversation(
    sandbox, live_server, first_responders
):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: ANSWER)
    patient = _patient(sandbox, channel)
    event = sandbox.send_text(channel, patient, "駐車場はありますか", deliver=False)["event"]
    event["timestamp"] -= 90_000  # handled 90 s after the patient wrote: the token has expired
    assert sandbox.deliver(channel, [event])["status"] == 200
    run_jobs()
    assert _answers(clinic) == [("受け付けました", "push")]
    assert [m["via"] for m in sandbox.inbox(channel, patient)] == ["push"]
    assert _used(clinic) == 1
    assert _states(clinic) == {"handled"}


def test_a_token_line_refuses_falls_back_to_a_push_instead_of_failing(sandbox, live_server, first_responders):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: ANSWER)
    patient = _patient(sandbox, channel)
    sandbox.configure(channel, reply_token_ttl_s=0)  # LINE answers "Invalid reply token"
    sandbox.send_text(channel, patient, "今日やってますか")
    run_jobs()
    replies = [r["status"] for r in sandbox.requests(channel) if r["operation"] == "replyMessage"]
    assert replies == [400]
    assert _answers(clinic) == [("受け付けました", "push")]
    assert [m["via"] for m in sandbox.inbox(channel, patient)] == ["push"]
    assert _used(clinic) == 1 and _states(clinic) == {"handled"}


def test_a_push_answer_retried_after_a_crash_reaches_the_patient_once(sandbox, live_server, first_responders):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: ANSWER)
    patient = _patient(sandbox, channel)
    event = sandbox.send_text(channel, patient, "薬の相談", deliver=False)["event"]
    event["timestamp"] -= 90_000
    sandbox.deliver(channel, [event])
    run_jobs()
    with tenant_scope(clinic.id):  # as if the worker died after LINE accepted the push
        db.session.execute(sa.delete(Message).where(Message.direction == Direction.OUT))
        db.session.execute(sa.update(WebhookEvent).values(state="failed"))
        db.session.commit()
        event_ids = db.session.scalars(sa.select(WebhookEvent.id)).all()
    assert handle_webhook_events(clinic.id, event_ids) == 1
    assert len(sandbox.inbox(channel, patient)) == 1  # the same retry key: LINE answered 409
    pushes = [r["status"] for r in sandbox.requests(channel) if r["operation"] == "pushMessage"]
    assert pushes == [200, 409]
    assert _answers(clinic) == [("受け付けました", "push")]


def test_one_job_handles_every_pending_event_of_the_clinic(sandbox, live_server, first_responders):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: ANSWER)
    patients = [_patient(sandbox, channel, f"患者{i}") for i in range(6)]
    for patient in patients:
        sandbox.send_text(channel, patient, f"{patient}です")
    with tenant_scope(clinic.id):
        first = db.session.scalar(sa.select(sa.func.min(WebhookEvent.id)))
    assert handle_webhook_events(clinic.id, [first]) == 6  # the batch: every pending event
    assert _states(clinic) == {"handled"}
    assert all(len(sandbox.inbox(channel, p)) == 1 for p in patients)
    run_jobs()  # the other requests' jobs find nothing left to do
    assert all(len(sandbox.inbox(channel, p)) == 1 for p in patients)
    assert sorted(v for _, v in _answers(clinic)) == ["reply"] * 6


def test_a_friends_events_are_handled_in_the_order_they_were_sent(sandbox, live_server, first_responders):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: [{"type": "text", "text": "はい"}])
    patient = _patient(sandbox, channel)
    events = [sandbox.send_text(channel, patient, f"{n}通目", deliver=False)["event"] for n in range(1, 6)]
    sandbox.deliver(channel, events)
    run_jobs()
    with tenant_scope(clinic.id):
        texts = db.session.scalars(
            sa.select(Message.text).where(Message.direction == Direction.IN).order_by(Message.id)
        ).all()
    assert texts == [f"{n}通目" for n in range(1, 6)]


def test_a_responder_failing_in_a_batch_fails_only_its_event_and_the_others_are_answered(
    sandbox, live_server, first_responders
):
    clinic, channel = connect_clinic(sandbox, live_server)

    def answer_or_break(clinic, friend, event):
        if event["message"]["text"] == "壊れる質問":
            raise RuntimeError("responder broke")
        return ANSWER

    first_responders(hooks._message_responders, answer_or_break)
    patients = [_patient(sandbox, channel, f"患者{i}") for i in range(4)]
    for patient in patients:  # known friends with profiles: their next messages go as one batch
        sandbox.send_text(channel, patient, "はじめまして")
    run_jobs()
    for patient in patients[:3]:
        sandbox.send_text(channel, patient, "予約できますか")
    sandbox.send_text(channel, patients[3], "壊れる質問")
    run_jobs()
    with tenant_scope(clinic.id):
        failed = db.session.scalars(sa.select(WebhookEvent.error).where(WebhookEvent.state == "failed")).all()
        incoming = db.session.scalar(
            sa.select(sa.func.count()).select_from(Message).where(Message.direction == Direction.IN)
        )
    assert [error.startswith("RuntimeError") for error in failed] == [True]
    assert incoming == 8  # every patient's message is kept once, the failing one included
    assert all(len(sandbox.inbox(channel, p)) == 2 for p in patients[:3])
    assert len(sandbox.inbox(channel, patients[3])) == 1  # only its first answer; the failed one is retried


class _WorkerDied(BaseException):
    """The worker process dying at that very point: no handler of the product's runs."""


def _crash_after_line_took_the_replies(monkeypatch, clinic, token_expired: bool) -> None:
    """Run the clinic's batch until LINE has accepted its replies, then die before step 3 commits;
    the claims are left as a dead worker leaves them, and the next job may take them again."""
    from saas.friends import batch
    from saas.webhooks import jobs

    def die(clinic, items):
        raise _WorkerDied

    monkeypatch.setattr(batch, "record", die)
    with tenant_scope(clinic.id):
        event_ids = db.session.scalars(sa.select(WebhookEvent.id)).all()
    try:
        handle_webhook_events(clinic.id, event_ids)
    except _WorkerDied:
        pass
    else:
        raise AssertionError("the batch did not reach LINE")
    monkeypatch.undo()
    db.session.rollback()
    with tenant_scope(clinic.id):  # the claim timed out; maybe the token too
        values = {"claimed_at": utcnow() - jobs.CLAIM_TIMEOUT - timedelta(seconds=1)}
        if token_expired:
            values["reply_token_expires_at"] = utcnow() - timedelta(seconds=1)
        db.session.execute(sa.update(WebhookEvent).values(**values))
        db.session.commit()


@pytest.mark.parametrize("token_expired", [True, False], ids=["token-expired", "token-still-valid"])
def test_a_worker_dying_after_line_took_the_batchs_replies_answers_nobody_twice(
    sandbox, live_server, first_responders, monkeypatch, token_expired
):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: ANSWER)
    patients = [_patient(sandbox, channel, f"患者{i}") for i in range(3)]
    for patient in patients:  # known friends (their profiles fetched): the next messages are one batch
        sandbox.send_text(channel, patient, "はじめまして")
    run_jobs()
    for patient in patients:
        sandbox.send_text(channel, patient, "予約を変更したいです")  # stored, a job queued
    _crash_after_line_took_the_replies(monkeypatch, clinic, token_expired)
    assert all(len(sandbox.inbox(channel, p)) == 2 for p in patients)  # LINE delivered before the crash

    run_jobs()  # the job the webhooks queued takes the dead worker's claims again

    assert [[m["via"] for m in sandbox.inbox(channel, p)] for p in patients] == [["reply", "reply"]] * 3
    assert not [r for r in sandbox.requests(channel) if r["operation"] == "pushMessage"]
    assert _answers(clinic) == [("受け付けました", "reply")] * 6  # the conversation shows each answer once
    assert _states(clinic) == {"handled"} and _used(clinic) == 0


def _sends(sandbox, channel) -> list[tuple[str, int]]:
    """Replies and pushes the sandbox received after the follow, with LINE's status."""
    operations = ("replyMessage", "pushMessage")
    return [(r["operation"], r["status"]) for r in sandbox.requests(channel) if r["operation"] in operations]


@pytest.mark.parametrize("kind", ["text", "image"], ids=["batched-text", "one-by-one-image"])
def test_an_answer_line_refuses_with_a_400_is_given_up_at_once_with_one_warning(
    sandbox, live_server, first_responders, caplog, kind
):
    from rq.registry import ScheduledJobRegistry

    from saas.queues import WEBHOOKS, get_queue

    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: ANSWER)
    patient = sandbox.add_patient(channel, "拒否 太郎")
    sandbox.follow(channel, patient)
    run_jobs()
    sandbox.configure(channel, fail_next=[400, 400])  # the reply, then the push
    if kind == "text":
        sandbox.send_text(channel, patient, "診察券をなくしました")
    else:
        sandbox.send_media(channel, patient, "image")
    caplog.clear()
    run_jobs()

    assert _sends(sandbox, channel) == [("replyMessage", 400), ("pushMessage", 400)]  # once each, not five times
    assert sandbox.inbox(channel, patient) == [] and _answers(clinic) == [] and _used(clinic) == 0
    with tenant_scope(clinic.id):
        event = db.session.scalar(sa.select(WebhookEvent).where(WebhookEvent.event_type == "message"))
        assert db.session.scalar(sa.select(Message.kind).where(Message.direction == Direction.IN)) == kind
    assert event.state == "failed" and "400" in event.error
    assert ScheduledJobRegistry(queue=get_queue(WEBHOOKS)).count == 0  # no retry waits in RQ
    assert handle_webhook_events(clinic.id, [event.id]) == 0  # nor is the event claimed again
    assert len(_sends(sandbox, channel)) == 2
    warnings = [r for r in caplog.records if r.name == "saas.webhooks.jobs"]
    assert [r.levelname for r in warnings] == ["WARNING"] and not any(r.exc_info for r in caplog.records)
