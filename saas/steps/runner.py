"""The tick: do every due step, once, through the delivery pipeline.

Per clinic (tenant scope), each run first settles the sends whose delivery has ended, then takes
the due enrolments (``next_due_at <= now``, an index range: the cost is the due rows, not the
friends in scenarios), grouped by (scenario, step):

- outside the scenario's send window the group's time is moved to the window's next opening;
- a friend who blocked the clinic is skipped, counted, and leaves the scenario (「ブロック」);
- friends failing the step's conditions skip it, or branch to the step it names;
- over quota, the step waits (re-checked every ``QUOTA_RECHECK``) and the clinic is warned;
- the others are *claimed* with a conditional UPDATE (``next_due_at`` set NULL where it is still
  due, ``RETURNING`` the rows this worker won), one ``step_send`` row per (enrolment, step) (unique)
  and one delivery for all of them, in the same commit; the pipeline then reserves the quota,
  plans multicasts of 500 with retry keys and sends within the rate limit.

When the delivery ends, each friend's send becomes sent / failed / skipped (blocked, no consent),
the messages are stored in the friend's 1:1 conversation, the step's actions run and the next step
is timed. A refused delivery (quota taken meanwhile) or one lost before planning gives its claims
back: those friends are due again, nothing was sent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

import sqlalchemy as sa

from saas.audit import services as audit
from saas.common import utcnow
from saas.delivery import services as delivery
from saas.delivery.audience import Candidate
from saas.delivery.models import ChunkStatus, DeliveryStatus
from saas.extensions import db
from saas.friends.models import Direction, Friend, FriendStatus, Message
from saas.messaging.objects import MessageValidationError
from saas.messaging.variables import group_recipients_by_rendering
from saas.portal.models import count_stored
from saas.quota.usage import usage
from saas.steps import actions, conditions
from saas.steps.enrolments import end, steps_of, window_for
from saas.steps.models import (
    EnrolmentStatus,
    ScenarioStatus,
    ScenarioStep,
    SendStatus,
    StepEnrolment,
    StepScenario,
    StepSend,
    StopReason,
)
from saas.steps.timing import SendWindow, due_at
from saas.tenancy.models import Clinic

log = logging.getLogger(__name__)
BATCH = 5000  # due enrolments taken per clinic and run; the rest wait for the next tick
TICK_LIMIT = 100_000  # due enrolments one tick reads across clinics
QUOTA_RECHECK = timedelta(minutes=10)
LOST_DRAFT = timedelta(minutes=5)  # a claim whose delivery was never submitted is given back after this
ENDED = (
    DeliveryStatus.DONE,
    DeliveryStatus.PARTLY_FAILED,
    DeliveryStatus.FAILED,
    DeliveryStatus.CANCELLED,
    DeliveryStatus.STOPPED,
)


def run_clinic(clinic: Clinic, now: datetime, groups: dict[tuple[int, int], list[int]] | None = None) -> dict:
    """One tick for one clinic (its tenant scope is current): the due ``groups`` the tick found,
    or its own scan when run without them. Commits. Returns counts."""
    counts: dict[str, int] = defaultdict(int)
    settle_sends(clinic, now, counts)
    for (scenario_id, step_id), ids in (_due_groups(clinic.id, now) if groups is None else groups).items():
        scenario = db.session.get(StepScenario, scenario_id)
        if scenario is not None:
            _Group(clinic, scenario, step_id, ids, now, counts).run()
    return dict(counts)


def due_work(now: datetime, limit: int = TICK_LIMIT) -> dict[int, dict[tuple[int, int], list[int]]]:
    """Every clinic's due enrolments by (scenario, step), in one statement over the next-due index
    (platform scope: the cron tick). At most ``BATCH`` per clinic; the rest wait for the next tick."""
    rows = db.session.execute(
        sa.select(StepEnrolment.clinic_id, StepEnrolment.scenario_id, StepEnrolment.current_step_id, StepEnrolment.id)
        .where(StepEnrolment.next_due_at <= now, StepEnrolment.status == EnrolmentStatus.ACTIVE)
        .order_by(StepEnrolment.next_due_at)
        .limit(limit)
    )
    work: dict[int, dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    taken: dict[int, int] = defaultdict(int)
    for clinic_id, scenario_id, step_id, enrolment_id in rows:
        if taken[clinic_id] < BATCH:
            work[clinic_id][(scenario_id, step_id or 0)].append(enrolment_id)
            taken[clinic_id] += 1
    return {clinic_id: dict(groups) for clinic_id, groups in work.items()}


def _due_groups(clinic_id: int, now: datetime) -> dict[tuple[int, int], list[int]]:
    rows = db.session.execute(
        sa.select(StepEnrolment.id, StepEnrolment.scenario_id, StepEnrolment.current_step_id)
        .where(
            StepEnrolment.clinic_id == clinic_id,
            StepEnrolment.next_due_at <= now,
            StepEnrolment.status == EnrolmentStatus.ACTIVE,
        )
        .order_by(StepEnrolment.next_due_at)
        .limit(BATCH)
    )
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for enrolment_id, scenario_id, step_id in rows:
        groups[(scenario_id, step_id or 0)].append(enrolment_id)
    return groups


def claim(ids: list[int], step_id: int, now: datetime) -> set[int]:
    """Take these enrolments' current step for this worker: the ids it won (others were faster)."""
    won: set[int] = set()
    for start in range(0, len(ids), 1000):
        result = db.session.execute(
            sa.update(StepEnrolment)
            .where(
                StepEnrolment.id.in_(ids[start : start + 1000]),
                StepEnrolment.current_step_id == step_id,
                StepEnrolment.next_due_at <= now,
                StepEnrolment.status == EnrolmentStatus.ACTIVE,
            )
            .values(next_due_at=None, updated_at=utcnow())
            .returning(StepEnrolment.id),
            execution_options={"synchronize_session": False},
        )
        won.update(result.scalars())
    return won


def next_step(steps: list[ScenarioStep], step: ScenarioStep, *, branch: bool = False) -> ScenarioStep | None:
    """The step after ``step``; with ``branch``, the step it names for friends failing its conditions."""
    if branch and step.otherwise == "goto":
        target = next((s for s in steps if s.id == step.goto_step_id and s.position > step.position), None)
        if target is not None:
            return target
    return next((s for s in steps if (s.position, s.id) > (step.position, step.id)), None)


def advance(
    enrolment: StepEnrolment,
    steps: list[ScenarioStep],
    step: ScenarioStep | None,
    window: SendWindow,
    now: datetime,
    *,
    branch: bool = False,
) -> None:
    """After ``step``: time the next one, or complete the scenario. A stopped friend stays stopped."""
    enrolment.last_step_at = now
    if enrolment.status not in (EnrolmentStatus.ACTIVE, EnrolmentStatus.PAUSED):
        return
    following = next_step(steps, step, branch=branch) if step is not None else None
    if following is None:
        end(enrolment, EnrolmentStatus.COMPLETED, "", now)
        return
    enrolment.current_step_id = following.id
    enrolment.next_due_at = due_at(following, enrolment, window, now) if enrolment.status == "active" else None


class _Group:
    """The due enrolments of one scenario step in one run."""

    def __init__(self, clinic, scenario, step_id, ids, now, counts):
        self.clinic, self.scenario, self.now, self.counts = clinic, scenario, now, counts
        self.steps = steps_of(scenario.id)
        self.step = next((s for s in self.steps if s.id == step_id), None)
        self.step_id, self.ids = step_id, ids
        self.window = window_for(scenario)

    def run(self) -> None:
        if self.scenario.status != ScenarioStatus.ACTIVE:
            self._hold()
        elif not self.window.is_open(self.now):
            self._shift(self.window.earliest(self.now))
        elif self.step is None:  # the step was deleted meanwhile: go on with what follows, or finish
            self._finish_missing_step()
        else:
            self._do_step()
        db.session.commit()

    def _set_due(self, value) -> None:
        db.session.execute(
            sa.update(StepEnrolment)
            .where(StepEnrolment.id.in_(self.ids), StepEnrolment.next_due_at <= self.now)
            .values(next_due_at=value),
            execution_options={"synchronize_session": False},
        )

    def _hold(self) -> None:
        self._set_due(None)  # paused or back to draft: resuming times the step again

    def _shift(self, opening: datetime) -> None:
        self._set_due(opening)
        self.counts["shifted"] += len(self.ids)

    def _finish_missing_step(self) -> None:
        for enrolment in self._load(claim(self.ids, self.step_id, self.now)):
            end(enrolment, EnrolmentStatus.COMPLETED, "", self.now)

    def _load(self, ids) -> list[StepEnrolment]:
        found: list[StepEnrolment] = []
        ids = list(ids)
        for start in range(0, len(ids), 1000):
            found += db.session.scalars(sa.select(StepEnrolment).where(StepEnrolment.id.in_(ids[start : start + 1000])))
        return found

    def _do_step(self) -> None:
        candidates = self._load(self.ids)
        following = self._following({e.friend_id for e in candidates})
        blocked = [e for e in candidates if e.friend_id not in following]
        passing = conditions.passing(
            self.step.conditions, [e.friend_id for e in candidates if e.friend_id in following]
        )
        failing = [e for e in candidates if e.friend_id in following and e.friend_id not in passing]
        to_do = [e for e in candidates if e.friend_id in passing]
        if self.step.messages and to_do and not self._quota_allows(len(to_do)):
            self._set_due_for([e.id for e in to_do], self.now + QUOTA_RECHECK)
            to_do = []
        won = claim([e.id for e in blocked + failing + to_do], self.step.id, self.now)
        done = self._already_done(won)
        self._skip([e for e in blocked if e.id in won and e.id not in done], "blocked")
        self._skip([e for e in failing if e.id in won and e.id not in done], "condition")
        for enrolment in (e for e in candidates if e.id in done):
            advance(enrolment, self.steps, self.step, self.window, self.now)
        self._send([e for e in to_do if e.id in won and e.id not in done])

    def _following(self, friend_ids: set[int]) -> set[int]:
        query = sa.select(Friend.id).where(Friend.id.in_(friend_ids), Friend.status == FriendStatus.FOLLOWING)
        return set(db.session.scalars(query))

    def _already_done(self, won: set[int]) -> set[int]:
        """Claimed enrolments that already have this step's row (a rerun after a crash): not again."""
        if not won:
            return set()
        query = sa.select(StepSend.enrolment_id).where(
            StepSend.enrolment_id.in_(list(won)), StepSend.step_id == self.step.id
        )
        return set(db.session.scalars(query))

    def _set_due_for(self, ids: list[int], value) -> None:
        db.session.execute(
            sa.update(StepEnrolment).where(StepEnrolment.id.in_(ids)).values(next_due_at=value),
            execution_options={"synchronize_session": False},
        )

    def _quota_allows(self, needed: int) -> bool:
        remaining = usage(self.clinic.id).remaining
        if remaining is None or remaining >= needed:
            if self.scenario.waiting_since is not None:
                self.scenario.waiting_since = None
            return True
        warn_over_quota(self.scenario, needed, remaining, self.now)
        self.counts["waiting"] += needed
        return False

    def _rows(self, enrolments, status: str, reason: str = "", delivery_id: int | None = None) -> list[StepSend]:
        rows = [
            StepSend(
                clinic_id=self.clinic.id,
                enrolment_id=e.id,
                scenario_id=self.scenario.id,
                step_id=self.step.id,
                friend_id=e.friend_id,
                status=status,
                reason=reason,
                delivery_id=delivery_id,
                created_at=self.now,
                finished_at=None if status == SendStatus.SENDING else self.now,
            )
            for e in enrolments
        ]
        db.session.add_all(rows)
        return rows

    def _skip(self, enrolments: list[StepEnrolment], reason: str) -> None:
        if not enrolments:
            return
        self._rows(enrolments, SendStatus.SKIPPED, reason)
        self.counts[reason] += len(enrolments)
        for enrolment in enrolments:
            if reason == "blocked":
                end(enrolment, EnrolmentStatus.STOPPED, StopReason.UNFOLLOWED, self.now)
                enrolment.unfollowed_at = enrolment.unfollowed_at or self.now
            else:
                advance(enrolment, self.steps, self.step, self.window, self.now, branch=True)

    def _send(self, enrolments: list[StepEnrolment]) -> None:
        if not enrolments:
            return
        if not self.step.messages:  # a step of actions only
            self._rows(enrolments, SendStatus.SENT, "actions")
            actions.run(self.clinic, self.step, [e.friend_id for e in enrolments], self.now)
            for enrolment in enrolments:
                advance(enrolment, self.steps, self.step, self.window, self.now)
            self.counts["actions"] += len(enrolments)
            return
        title = f"ステップ配信: {self.scenario.name}・{self.step.name or self.step.position + 1}"[:200]
        sending = delivery.create_for_friends(
            [e.friend_id for e in enrolments], self.step.messages, title=title, consent=self.scenario.consent
        )
        self._rows(enrolments, SendStatus.SENDING, delivery_id=sending.id)
        self.counts["sending"] += len(enrolments)
        db.session.commit()
        try:
            delivery.submit(sending)
        except delivery.QueueUnavailable as lost:  # claims are given back by the next run
            log.warning("step delivery of scenario %s not queued: %s", self.scenario.id, lost)


def warn_over_quota(scenario: StepScenario, needed: int, remaining: int, now: datetime) -> None:
    """The scenario's steps wait for quota: shown on the scenario pages, audited once per wait."""
    if scenario.waiting_since is not None:
        return
    scenario.waiting_since = now
    audit.record(
        "steps.waiting_for_quota",
        clinic_id=scenario.clinic_id,
        target_type="step_scenario",
        target_id=scenario.id,
        details={"needed": needed, "remaining": remaining},
        actor_email="system",
    )
    log.warning("scenario %s waits for quota: %s needed, %s left", scenario.id, needed, remaining)


# --- settling sends whose delivery ended ---------------------------------------------------------


def settle_sends(clinic: Clinic, now: datetime, counts: dict) -> None:
    """Turn ended deliveries into per-friend results; give back claims of refused or lost ones."""
    delivery_ids = db.session.scalars(
        sa.select(StepSend.delivery_id)
        .where(StepSend.status == SendStatus.SENDING, StepSend.clinic_id == clinic.id)
        .distinct()
    ).all()
    for delivery_id in delivery_ids:
        state = delivery.state_of(delivery_id) if delivery_id else None
        status, changed = state if state else (None, None)
        if (
            status is None
            or status == DeliveryStatus.REFUSED
            or (status == DeliveryStatus.DRAFT and changed < utcnow() - LOST_DRAFT)
        ):
            _give_back(delivery_id, now, refused=status == DeliveryStatus.REFUSED, counts=counts)
        elif status in ENDED:
            _Settlement(clinic, delivery_id, status, now, counts).run()
        db.session.commit()


def _give_back(delivery_id: int | None, now: datetime, *, refused: bool, counts: dict, friend_ids=None) -> None:
    """Nothing was sent to these friends: their step is due again (after a while when over quota)."""
    query = sa.select(StepSend).where(StepSend.delivery_id == delivery_id, StepSend.status == SendStatus.SENDING)
    if friend_ids is not None:
        query = query.where(StepSend.friend_id.in_(friend_ids))
    sends = list(db.session.scalars(query))
    due_again = now + QUOTA_RECHECK if refused else now
    for scenario_id in {s.scenario_id for s in sends}:
        scenario = db.session.get(StepScenario, scenario_id)
        if refused and scenario is not None:
            warn_over_quota(scenario, len(sends), 0, now)
    enrolment_ids = [s.enrolment_id for s in sends]
    for send in sends:
        db.session.delete(send)
    db.session.flush()
    if enrolment_ids:
        db.session.execute(
            sa.update(StepEnrolment)
            .where(StepEnrolment.id.in_(enrolment_ids), StepEnrolment.status == EnrolmentStatus.ACTIVE)
            .values(next_due_at=due_again),
            execution_options={"synchronize_session": False},
        )
    counts["given_back"] += len(sends)


class _Settlement:
    """One ended delivery of a step: each friend's result, the conversation, actions, the next step."""

    def __init__(self, clinic, delivery_id, status, now, counts):
        self.clinic, self.delivery_id, self.status, self.now, self.counts = clinic, delivery_id, status, now, counts

    def run(self) -> None:
        outcomes = delivery.recipient_outcomes(self.delivery_id)
        sends = list(
            db.session.scalars(
                sa.select(StepSend).where(
                    StepSend.delivery_id == self.delivery_id, StepSend.status == SendStatus.SENDING
                )
            )
        )
        if self.status == DeliveryStatus.STOPPED:  # LINE's monthly limit: the unsent wait, not skip
            unsent = [s.friend_id for s in sends if outcomes.get(s.friend_id) == ChunkStatus.PENDING]
            _give_back(self.delivery_id, self.now, refused=True, counts=self.counts, friend_ids=unsent)
            sends = [s for s in sends if s.friend_id not in set(unsent)]
        following = _following_ids({s.friend_id for s in sends})
        for send in sends:
            self._result(send, outcomes.get(send.friend_id), send.friend_id in following)
        self._after(sends)

    def _result(self, send: StepSend, outcome: str | None, following: bool) -> None:
        send.finished_at = self.now
        if outcome == ChunkStatus.SENT:
            send.status = SendStatus.SENT
        elif outcome == ChunkStatus.FAILED:
            send.status, send.reason = SendStatus.FAILED, "failed"
        elif outcome == ChunkStatus.PENDING:
            send.status, send.reason = SendStatus.SKIPPED, "cancelled"
        else:  # left out when planned
            send.status, send.reason = SendStatus.SKIPPED, "no_consent" if following else "blocked"
        self.counts[send.reason or "sent"] += 1

    def _after(self, sends: list[StepSend]) -> None:
        by_step: dict[int, list[StepSend]] = defaultdict(list)
        for send in sends:
            by_step[send.step_id].append(send)
        for step_id, group in by_step.items():
            step = db.session.get(ScenarioStep, step_id)
            scenario = db.session.get(StepScenario, group[0].scenario_id)
            sent = [s.friend_id for s in group if s.status == SendStatus.SENT]
            if step is not None:
                keep_in_conversations(self.clinic, step.messages, sent, self.now)
            reached = [s.friend_id for s in group if s.reason != "blocked"]
            if step is not None:
                actions.run(self.clinic, step, reached, self.now)
            self._move_on(scenario, step, group)

    def _move_on(self, scenario: StepScenario, step: ScenarioStep | None, group: list[StepSend]) -> None:
        steps, window = steps_of(scenario.id), window_for(scenario)
        enrolments = {
            e.id: e
            for e in db.session.scalars(
                sa.select(StepEnrolment).where(StepEnrolment.id.in_([s.enrolment_id for s in group]))
            )
        }
        for send in group:
            enrolment = enrolments[send.enrolment_id]
            if send.reason == "blocked":
                end(enrolment, EnrolmentStatus.STOPPED, StopReason.UNFOLLOWED, self.now)
                enrolment.unfollowed_at = enrolment.unfollowed_at or self.now
            else:
                advance(enrolment, steps, step, window, self.now)


def _following_ids(friend_ids: set[int]) -> set[int]:
    query = sa.select(Friend.id).where(Friend.id.in_(friend_ids), Friend.status == FriendStatus.FOLLOWING)
    return set(db.session.scalars(query))


def keep_in_conversations(clinic: Clinic, template: list[dict], friend_ids: list[int], now: datetime) -> None:
    """Each friend's 1:1 conversation shows the step's messages as they were sent (rendered)."""
    if not friend_ids or not template:
        return
    rows = db.session.execute(
        sa.select(Friend.id, Friend.line_user_id, Friend.display_name).where(Friend.id.in_(friend_ids))
    )
    friends = [Candidate(*row) for row in rows]
    try:
        groups = group_recipients_by_rendering(template, clinic, friends)
    except MessageValidationError:
        log.warning("step messages of clinic %s no longer render; conversation not updated", clinic.id)
        return
    values = [
        {
            "clinic_id": clinic.id,
            "friend_id": friend.id,
            "direction": Direction.OUT.value,
            "kind": str(message.get("type", "text"))[:32],
            "text": message.get("text") or message.get("altText") or "",
            "payload": message,
            "via": "push",
            "created_at": now,
        }
        for group in groups
        for friend in group.friends
        for message in group.messages
    ]
    for start in range(0, len(values), 2000):
        db.session.execute(sa.insert(Message), values[start : start + 2000])
    count_stored(db.session, values)  # a bulk insert fires no mapper event: the dashboard's day counts
    for start in range(0, len(friend_ids), 2000):
        _fold_into_conversations(clinic.id, friend_ids[start : start + 2000], now)


def _fold_into_conversations(clinic_id: int, friend_ids: list[int], now: datetime) -> None:
    """The inbox's conversation rows learn their newest message, as for a message stored one by one."""
    from saas.inbox.counters import upsert_from_select

    columns = ["clinic_id", "friend_id", "status", "status_changed_at", "last_read_message_id", "last_message_id",
               "last_message_at", "unread_count", "created_at", "updated_at"]  # fmt: skip
    newest = (
        sa.select(
            sa.literal(clinic_id),
            Message.friend_id,
            sa.literal("open"),
            sa.literal(now),
            sa.literal(0),
            sa.func.max(Message.id),
            sa.literal(now),
            sa.literal(0),
            sa.literal(now),
            sa.literal(now),
        )  # fmt: skip
        .where(Message.clinic_id == clinic_id, Message.friend_id.in_(friend_ids))
        .group_by(Message.friend_id)
    )
    db.session.execute(upsert_from_select(db.engine.dialect.name, columns, newest))
