"""Escalation use cases: post the sweeper's notifications, and let reps take over in Slack."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.backoff import backoff
from bot.business_hours import BusinessHours
from bot.escalation import ESCALATION, ESCALATION_AGAIN, NUDGE, SweepResult, sweep
from bot.escalation_blocks import (
    EscalationView,
    ProposalLine,
    answer_now_modal,
    escalation_message,
    escalation_text,
    nudge_text,
)
from bot.notifier import NotifierError
from bot.states import record
from bot.takeover import SendOutcome, SolveOutcome, answer_now, send_proposal_now, solve_elsewhere
from bot.views import vote_count
from bot.workflow import Feedback, Workflow, form_feedback
from storage.models import Customer, Notification, Proposal, Question, Reply

log = logging.getLogger(__name__)

SYSTEM = "crowdcare"
NUDGE_TAG, ESCALATION_TAG = "crowdcare_nudge", "crowdcare_escalation"


@dataclass(frozen=True)
class EscalationTargets:
    """Where escalations go and whom they mention."""

    escalation_channel: str | None = None
    oncall_group: str | None = None
    supervisor_group: str | None = None
    nudge_mention: str | None = None


class EscalationFlow:
    """Sweeps deadlines, posts nudges and escalations, and handles reps taking over."""

    def __init__(
        self,
        workflow: Workflow,
        targets: EscalationTargets,
        *,
        hours: Callable[[], BusinessHours | None] = lambda: None,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.workflow = workflow
        self.sessions = workflow.sessions
        self.notifier = workflow.notifier
        self.clock = workflow.clock
        self.targets = targets
        self.hours = hours
        self.lease = lease

    # -- the sweep and its notifications ---------------------------------------------------

    def sweep(self) -> SweepResult:
        """Act on every due deadline, then post what was decided."""
        result = sweep(self.sessions, now=self.clock(), hours=self.hours())
        if result.any:
            self.post_due_notifications()
        return result

    def post_due_notifications(self, limit: int = 50) -> int:
        """Post pending nudges and escalations (each at most once); return how many went out."""
        claims = self._claim(limit)
        return sum(self._post(notification_id, attempt) for notification_id, attempt in claims)

    def _claim(self, limit: int) -> list[tuple[int, int]]:
        now = self.clock()
        with self.sessions.begin() as session:
            due = session.scalars(
                select(Notification)
                .where(
                    or_(Notification.state == "pending", Notification.state == "sending"),
                    Notification.next_attempt_at <= now,
                )
                .order_by(Notification.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for notification in due:
                notification.state = "sending"
                notification.attempts += 1
                notification.next_attempt_at = now + self.lease
            return [(n.id, n.attempts) for n in due]

    def _post(self, notification_id: int, attempt: int) -> bool:
        with self.sessions.begin() as session:
            notification = session.get_one(Notification, notification_id)
            question = session.get_one(Question, notification.question_id)
            kind, question_id = notification.kind, question.id
            target = self._target(question, kind)
            if target is None:
                self._finish(
                    session,
                    notification,
                    state="skipped",
                    channel=None,
                    ts=None,
                    error="no channel to post in",
                )
                return False
            channel, thread_ts = target
            text, blocks, tag = self._render(session, question, kind)
        try:
            # A previous attempt's fate is unknown: look for its message before posting again.
            ts = self.notifier.find_message(channel, tag[0], tag[1]) if attempt > 1 else None
            ts = ts or self.notifier.post_message(
                channel, text, blocks, thread_ts=thread_ts, tag=tag
            )
        except NotifierError as exc:
            with self.sessions.begin() as session:
                notification = session.get_one(Notification, notification_id)
                if notification.state == "sending" and notification.attempts == attempt:
                    notification.state = "pending"
                    notification.next_attempt_at = self.clock() + backoff(
                        timedelta(seconds=5), attempt - 1, timedelta(minutes=15)
                    )
                    notification.last_error = str(exc)[:500]
            log.warning("%s for question %s not posted yet: %s", kind, question_id, exc)
            return False
        with self.sessions.begin() as session:
            notification = session.get_one(Notification, notification_id)
            if notification.state != "sending" or notification.attempts != attempt:
                return False  # another sender took over after our lease expired
            self._finish(session, notification, state="sent", channel=channel, ts=ts, error=None)
            if kind == ESCALATION:
                question = session.get_one(Question, question_id)
                question.escalation_channel, question.escalation_ts = channel, ts
        self.workflow.refresh_card(question_id)
        return True

    def _finish(
        self,
        session: Session,
        notification: Notification,
        *,
        state: str,
        channel: str | None,
        ts: str | None,
        error: str | None,
    ) -> None:
        notification.state, notification.channel, notification.ts = state, channel, ts
        notification.last_error = error
        record(
            session,
            actor=SYSTEM,
            action=f"notification.{state}",
            question_id=notification.question_id,
            now=self.clock(),
            detail={"kind": notification.kind, "channel": channel, "ts": ts, "error": error},
        )

    def _target(self, question: Question, kind: str) -> tuple[str, str | None] | None:
        if kind == NUDGE or not self.targets.escalation_channel:
            # Without an escalation channel, escalations go to the card's thread.
            if question.card_channel is None or question.card_ts is None:
                return None
            return question.card_channel, question.card_ts
        return self.targets.escalation_channel, None

    def _render(
        self, session: Session, question: Question, kind: str
    ) -> tuple[str, list[dict[str, Any]] | None, tuple[str, dict[str, Any]]]:
        customer = session.get_one(Customer, question.customer_id)
        if kind == NUDGE:
            waited = (question.nudged_at or self.clock()) - question.received_at
            text = nudge_text(customer.handle, waited, self.targets.nudge_mention)
            return text, None, (NUDGE_TAG, {"question_id": question.id})
        level = 1 if kind == ESCALATION else 2
        view = self.escalation_view(session, question, level)
        tag = (ESCALATION_TAG, {"question_id": question.id, "level": level})
        return escalation_text(view), escalation_message(view), tag

    def escalation_view(self, session: Session, question: Question, level: int) -> EscalationView:
        """What an escalation message of ``level`` shows for ``question`` now."""
        customer = session.get_one(Customer, question.customer_id)
        proposals = session.scalars(
            select(Proposal).where(Proposal.question_id == question.id).order_by(Proposal.id)
        ).all()
        lines = tuple(
            ProposalLine(p.id, p.author_id, p.text, vote_count(session, p.id)) for p in proposals
        )
        lines = tuple(sorted(lines, key=lambda line: -line.votes))
        reply = session.scalar(select(Reply).where(Reply.question_id == question.id))
        chosen = session.get(Proposal, question.selected_proposal_id or 0)
        card_url = (
            self.notifier.permalink(question.card_channel, question.card_ts)
            if question.card_channel and question.card_ts
            else None
        )
        marker = question.escalated_again_at if level == 2 else question.escalated_at
        return EscalationView(
            question_id=question.id,
            level=level,
            customer_handle=customer.handle,
            customer_name=customer.name,
            text=question.text,
            post_url=question.post_url,
            card_url=card_url,
            waited=(marker or self.clock()) - question.received_at,
            proposals=lines,
            mention_group=(
                self.targets.oncall_group if level == 1 else self.targets.supervisor_group
            ),
            state=question.state,
            answered_by=chosen.author_id if chosen and reply and reply.state == "sent" else None,
            reply_url=reply.url if reply else None,
            answered_elsewhere_by=question.answered_by,
        )

    def refresh_escalations(self, question_id: int) -> None:
        """Re-render every escalation message of a question (after an answer, say)."""
        with self.sessions.begin() as session:
            question = session.get_one(Question, question_id)
            posted = session.scalars(
                select(Notification).where(
                    Notification.question_id == question_id,
                    Notification.kind.in_((ESCALATION, ESCALATION_AGAIN)),
                    Notification.state == "sent",
                )
            ).all()
            updates = []
            for notification in posted:
                level = 1 if notification.kind == ESCALATION else 2
                view = self.escalation_view(session, question, level)
                if notification.channel and notification.ts:
                    updates.append((notification.channel, notification.ts, view))
        for channel, ts, view in updates:
            try:
                self.notifier.update_message(
                    channel, ts, escalation_text(view), escalation_message(view)
                )
            except NotifierError as exc:
                log.warning("Escalation message not updated: %s", exc)

    def after_change(self, question_id: int) -> None:
        """Show a question's new state everywhere it appears."""
        self.workflow.refresh_thread(question_id)
        self.refresh_escalations(question_id)

    # -- reps taking over --------------------------------------------------------------------

    def answer_now_form(self, question_id: int) -> dict[str, object] | str:
        """The rep's modal, or why there is none."""
        with self.sessions.begin() as session:
            question = session.get(Question, question_id)
            if question is None:
                return "That question no longer exists."
            if question.state in ("answered", "closed", "ignored", "selected", "sending"):
                return f"This question is {question.state}; there is nothing to answer."
            handle = session.get_one(Customer, question.customer_id).handle
            return answer_now_modal(question.id, handle, question.text)

    def submit_answer_now(self, question_id: int, rep_id: str, text: str | None) -> Feedback:
        """Check and queue a rep's answer; problems go back into the modal."""
        signature = self.workflow.signature_for_user(rep_id)  # may ask Slack: before the commit
        with self.sessions.begin() as session:
            result = answer_now(
                session,
                question_id=question_id,
                rep_id=rep_id,
                text=text,
                now=self.clock(),
                policy=self.workflow.reply_policy(),
                signature=signature,
            )
        return form_feedback(result)

    def after_answer_now(self, question_id: int) -> None:
        """Show the rep's answer and send it."""
        self.after_change(question_id)
        self.workflow.wake_outbox()

    def send_proposal(self, proposal_id: int, actor: str) -> Feedback:
        """Send a proposal without waiting for votes."""
        with self.sessions.begin() as session:
            sent = send_proposal_now(
                session,
                proposal_id=proposal_id,
                actor=actor,
                now=self.clock(),
                policy=self.workflow.reply_policy(),
            )
            proposal = session.get(Proposal, proposal_id)
            question_id = proposal.question_id if proposal else 0
        if sent.outcome == SendOutcome.UNKNOWN:
            return Feedback(notice="That proposal no longer exists.")
        if sent.outcome == SendOutcome.CLOSED:
            return Feedback(notice="This question already has its answer chosen.")
        if sent.outcome == SendOutcome.REFUSED:
            return Feedback(
                notice="This proposal can't be sent as it is: "
                + " ".join(sent.problems)
                + " Propose a corrected answer instead."
            )
        self.after_change(question_id)
        self.workflow.wake_outbox()
        return Feedback(notice="Sending this proposal now.")

    def solved_elsewhere(self, question_id: int, agent: str, text: str | None) -> SolveOutcome:
        """The helpdesk solved the case: close it here and stop escalating."""
        with self.sessions.begin() as session:
            outcome = solve_elsewhere(
                session, question_id=question_id, agent=agent, text=text, now=self.clock()
            )
        if outcome == SolveOutcome.SOLVED:
            self.after_change(question_id)
        return outcome
