"""The use cases of the core loop: each runs domain steps in a transaction, then tells Slack.

Slack is told after the commit, so a Slack failure never undoes a decision; what Slack shows is
re-rendered from the database each time, so a later update repairs a missed one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot import mrkdwn, outbox
from bot.intake import asker_of
from bot.notifier import Notifier, NotifierError
from bot.ports import SocialChannel
from bot.reply_policy import ReplyPolicy, check_reply
from bot.slack_blocks import (
    ANSWER_BLOCK,
    CardView,
    HomeItem,
    card_rerouted_text,
    propose_modal,
    reply_failed_text,
    reply_held_text,
    slack_answer_text,
    thanks_text,
)
from bot.states import ACCEPTS_PROPOSALS, State, record, transition
from bot.views import card_view, proposal_view
from bot.voting import ProposeOutcome, ProposeResult, VoteOutcome, cast_vote, propose
from storage.models import Customer, Proposal, Question, Reply, Vote

log = logging.getLogger(__name__)

SYSTEM = "crowdcare"
# Slack's answers when the bot may not post in a channel: a routed card goes to the default one.
CANNOT_POST = frozenset({"channel_not_found", "not_in_channel", "is_archived"})


@dataclass(frozen=True)
class Feedback:
    """What to tell the person who acted: a private notice, or inline form errors."""

    notice: str | None = None
    form_errors: dict[str, str] | None = None
    proposal_id: int | None = None


def form_feedback(result: ProposeResult) -> Feedback:
    """What a proposal form shows after submit: the problems inline, or nothing (accepted)."""
    if result.outcome == ProposeOutcome.ACCEPTED and result.proposal is not None:
        return Feedback(proposal_id=result.proposal.id)
    if result.outcome == ProposeOutcome.INVALID:
        message = " ".join(result.problems)
    elif result.outcome == ProposeOutcome.UNKNOWN or result.question is None:
        message = "That question no longer exists."
    else:
        message = f"This question is {result.question.state} meanwhile."
    return Feedback(form_errors={ANSWER_BLOCK: message})


def _selected_notice(question: Question | None) -> str:
    """What the deciding voter is told: where the chosen answer goes now."""
    if question is not None and question.channel in outbox.SLACK_ONLY:
        return (
            "Your vote selected this answer. The question was asked in Slack, so nothing is "
            "published: the answer will be posted in this thread for the person who asked "
            "to pass on."
        )
    return "Your vote selected this answer; it is being sent now."


class Workflow:
    """The core loop's use cases, wired to a notifier, a channel and a clock."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        notifier: Notifier,
        *,
        questions_channel: str,
        votes_to_select: Callable[[], int],
        clock: Callable[[], datetime],
        wake_outbox: Callable[[], None] = lambda: None,
        send_lease: timedelta = timedelta(seconds=60),
        reply_policy: Callable[[], ReplyPolicy] = ReplyPolicy,
        signature_for_user: Callable[[str], str | None] = lambda _user_id: None,
    ) -> None:
        self.sessions = sessions
        self.notifier = notifier
        self.questions_channel = questions_channel
        self.votes_to_select = votes_to_select
        self.clock = clock
        self.wake_outbox = wake_outbox
        self.send_lease = send_lease
        # The policy as it is now, and the signature a person's public answers carry (may ask
        # Slack: call it before opening a transaction).
        self.reply_policy = reply_policy
        self.signature_for_user = signature_for_user
        # Set by the escalation flow, so escalation messages follow the question's fate.
        self.on_decided: Callable[[int], None] = lambda _question_id: None
        # Set by the app: run the card job at once (a question stored outside polling).
        self.wake_cards: Callable[[], None] = lambda: None

    # -- cards ---------------------------------------------------------------------------

    def post_new_cards(self, limit: int = 20) -> list[int]:
        """Post a card for every stored question that has none yet; return their ids."""
        with self.sessions.begin() as session:
            ids = list(
                session.scalars(
                    select(Question.id)
                    .where(Question.state == State.NEW)
                    .order_by(Question.id)
                    .limit(limit)
                )
            )
        return [qid for qid in ids if self._post_card(qid)]

    def _post_card(self, question_id: int) -> bool:
        # Two processes may both find this question new. Each commits its attempt before it
        # posts, so the second would see attempts > 1, look for the first one's card before it
        # landed, and post a second. The poster holds a lock on the question for its whole
        # attempt; another process skips the question meanwhile. The lock is released with the
        # transaction, or with the connection when the process dies.
        with self.sessions.begin() as guard:
            if not _try_lock_card(guard, question_id):
                return False
            return self._post_card_locked(question_id)

    def _post_card_locked(self, question_id: int) -> bool:
        with self.sessions.begin() as session:
            question = session.get_one(Question, question_id)
            if question.state != State.NEW:
                return False
            # Routed at intake; a retry looks for the card in that same channel (and in the
            # questions channel, where a card goes when Slack refuses the routed one).
            routed = question.route_channel or self.questions_channel
            question.card_attempts += 1
            attempts = question.card_attempts
            # Posting the card is what opens the question; show it as it will be.
            card = replace(card_view(session, question), state=State.OPEN)
        try:
            channel, ts, refused = self._place_card(question_id, routed, card, attempts)
        except NotifierError as exc:
            log.warning("Card for question %s not posted yet: %s", question_id, exc)
            return False
        now = self.clock()
        with self.sessions.begin() as session:
            question = session.get_one(Question, question_id)
            if refused is not None and question.state == State.NEW:
                record(
                    session,
                    actor=SYSTEM,
                    action="card.rerouted",
                    now=now,
                    question_id=question_id,
                    detail={"channel": routed, "error": refused, "posted_in": channel},
                )
            _record_card(session, question, channel, ts, now)
        if refused is not None:
            log.warning("Card %s posted in %s: %s said %s", question_id, channel, routed, refused)
            self._quietly(
                self.notifier.post_in_thread, channel, ts, card_rerouted_text(routed, refused)
            )
        return True

    def _place_card(
        self, question_id: int, routed: str, card: CardView, attempts: int
    ) -> tuple[str, str, str | None]:
        """Post the card in ``routed``, or in the questions channel when Slack will not let the
        bot post there: (channel, ts, Slack's refusal of ``routed`` or None)."""
        fallback = self.questions_channel if routed != self.questions_channel else None
        if attempts > 1:
            # An earlier attempt may have posted, in either channel, and died before recording
            # the ts. (Its note in the thread may then be missing; the card is not doubled.)
            for channel in filter(None, (routed, fallback)):
                ts = self._find_card(channel, question_id)
                if ts is not None:
                    return channel, ts, None
        try:
            return routed, self.notifier.post_card(routed, card), None
        except NotifierError as exc:
            if fallback is None or exc.error not in CANNOT_POST:
                raise
            refused = exc.error
        return fallback, self.notifier.post_card(fallback, card), refused

    def _find_card(self, channel: str, question_id: int) -> str | None:
        try:
            return self.notifier.find_card(channel, question_id)
        except NotifierError as exc:
            if exc.error in CANNOT_POST:
                return None  # the bot cannot read there, so it did not post there
            raise

    def refresh_card(self, question_id: int) -> None:
        """Re-render a question's card from the database."""
        with self.sessions.begin() as session:
            question = session.get_one(Question, question_id)
            if question.card_channel is None or question.card_ts is None:
                return
            channel, ts, card = (
                question.card_channel,
                question.card_ts,
                card_view(session, question),
            )
        self._quietly(self.notifier.update_card, channel, ts, card)

    # -- proposing -----------------------------------------------------------------------

    def proposal_form(
        self, question_id: int, card_channel: str, card_ts: str
    ) -> dict[str, object] | str:
        """The modal to propose an answer, or why there is none."""
        with self.sessions.begin() as session:
            question = session.get(Question, question_id)
            if question is None:
                return "That question no longer exists."
            # A click can beat the commit that records a just-posted card; the click (signed by
            # Slack) says where the card is.
            _record_card(session, question, card_channel, card_ts, self.clock())
            if question.state not in ACCEPTS_PROPOSALS:
                return f"This question is {question.state}; it takes no more proposals."
            handle = session.get_one(Customer, question.customer_id).handle
            return propose_modal(question.id, handle, question.text)

    def submit_proposal(self, question_id: int, author_id: str, text: str | None) -> Feedback:
        """Store a proposal; errors go back into the form. Show it with :meth:`show_proposal`."""
        signature = self.signature_for_user(author_id)  # may ask Slack: outside the transaction
        with self.sessions.begin() as session:
            result = propose(
                session,
                question_id=question_id,
                author_id=author_id,
                text=text,
                now=self.clock(),
                policy=self.reply_policy(),
                signature=signature,
            )
        return form_feedback(result)

    def show_proposal(self, proposal_id: int) -> None:
        """Post a stored proposal in its card's thread and update the card's count."""
        with self.sessions.begin() as session:
            proposal = session.get_one(Proposal, proposal_id)
            question = session.get_one(Question, proposal.question_id)
            view = proposal_view(session, proposal, self.votes_to_select())
            channel, thread = question.card_channel, question.card_ts
        if channel is None or thread is None:
            return
        try:
            ts = self.notifier.post_proposal(channel, thread, view)
        except NotifierError as exc:
            log.warning("Proposal %s not shown in Slack: %s", proposal_id, exc)
            return
        with self.sessions.begin() as session:
            session.get_one(Proposal, proposal_id).message_ts = ts
        self.refresh_card(view.question_id)

    # -- voting --------------------------------------------------------------------------

    def vote(self, proposal_id: int, voter_id: str) -> Feedback:
        """Count a click on Vote; on selection, queue the reply and wake the outbox."""
        threshold = self.votes_to_select()
        with self.sessions.begin() as session:
            result = cast_vote(
                session,
                proposal_id=proposal_id,
                voter_id=voter_id,
                votes_to_select=threshold,
                now=self.clock(),
            )
        notices = {
            VoteOutcome.OWN: "You can't vote for your own proposal: votes show that colleagues "
            "agree with it. Ask someone else to have a look.",
            VoteOutcome.DUPLICATE: f"You already voted for this proposal ({result.votes} of "
            f"{threshold} votes); a vote counts once.",
            VoteOutcome.CLOSED: "Voting on this question is over.",
            VoteOutcome.UNKNOWN: "That proposal no longer exists.",
        }
        if result.outcome in notices or result.proposal is None:
            return Feedback(notice=notices.get(result.outcome))
        if result.outcome == VoteOutcome.SELECTED:
            self.refresh_thread(result.proposal.question_id)
            self.on_decided(result.proposal.question_id)
            self.wake_outbox()
            return Feedback(notice=_selected_notice(result.question))
        self._refresh_proposal(result.proposal.id)
        return Feedback()

    def _refresh_proposal(self, proposal_id: int) -> None:
        with self.sessions.begin() as session:
            proposal = session.get_one(Proposal, proposal_id)
            question = session.get_one(Question, proposal.question_id)
            view = proposal_view(session, proposal, self.votes_to_select())
            channel, ts = question.card_channel, proposal.message_ts
        if channel is not None and ts is not None:
            self._quietly(self.notifier.update_proposal, channel, ts, view)

    def refresh_thread(self, question_id: int) -> None:
        """Re-render the card and every proposal of a question."""
        with self.sessions.begin() as session:
            ids = list(
                session.scalars(
                    select(Proposal.id)
                    .where(Proposal.question_id == question_id, Proposal.message_ts.is_not(None))
                    .order_by(Proposal.id)
                )
            )
        for proposal_id in ids:
            self._refresh_proposal(proposal_id)
        self.refresh_card(question_id)

    # -- replies -------------------------------------------------------------------------

    def send_due_replies(self, channel: SocialChannel) -> list[outbox.SendReport]:
        """Publish every due reply, then show the outcome in Slack."""
        self.answer_in_slack()
        claimed = outbox.claim_due(
            self.sessions, now=self.clock(), lease=self.send_lease, channel=channel.name
        )
        reports = []
        for reply_id in claimed:
            report = outbox.send_claimed(
                self.sessions, channel, reply_id, clock=self.clock, gate=self._policy_problem
            )
            reports.append(report)
            if report.state == "sent":
                self._announce_sent(report.question_id)
            elif report.state == "failed":
                self._announce_failed(report.question_id, report.error or "unknown error")
        return reports

    def answer_in_slack(self) -> list[int]:
        """Finish questions asked in Slack: the chosen answer goes in the card's thread."""
        answered = outbox.answer_in_slack(self.sessions, now=self.clock())
        for answer in answered:
            self.refresh_thread(answer.question_id)
            self.on_decided(answer.question_id)
            with self.sessions.begin() as session:
                question = session.get_one(Question, answer.question_id)
                author = (
                    session.get_one(Proposal, answer.proposal_id).author_id
                    if answer.proposal_id is not None
                    else None
                )
                asker = asker_of(session, question.id)
                channel, thread = question.card_channel, question.card_ts
            if channel is not None and thread is not None:
                text = slack_answer_text(asker, author, answer.text)
                self._quietly(self.notifier.post_in_thread, channel, thread, text)
        return [answer.question_id for answer in answered]

    def _announce_sent(self, question_id: int) -> None:
        self.refresh_thread(question_id)
        self.on_decided(question_id)
        with self.sessions.begin() as session:
            question = session.get_one(Question, question_id)
            reply = session.scalars(select(Reply).where(Reply.question_id == question_id)).one()
            if reply.proposal_id is None or question.card_ts is None or reply.url is None:
                return
            proposal = session.get_one(Proposal, reply.proposal_id)
            voters = list(
                session.scalars(
                    select(Vote.voter_id)
                    .where(Vote.proposal_id == proposal.id)
                    .order_by(Vote.created_at, Vote.id)
                )
            )
            text = thanks_text(proposal.author_id, voters, reply.url)
            channel, thread = question.card_channel, question.card_ts
        if channel is not None:
            self._quietly(self.notifier.post_in_thread, channel, thread, text)

    def _policy_problem(self, text: str) -> str | None:
        """Why ``text`` breaks the reply policy as it is now (it may have changed since)."""
        # The text already holds its signature, so it is checked as it will be published.
        check = check_reply(text, self.reply_policy(), signature=None, is_dm=False)
        return None if check.ok else " ".join(check.problems)

    def _announce_failed(self, question_id: int, error: str) -> None:
        self.refresh_thread(question_id)
        self.on_decided(question_id)
        with self.sessions.begin() as session:
            question = session.get_one(Question, question_id)
            channel, thread = question.card_channel, question.card_ts
        if error.startswith(outbox.POLICY_HOLD):
            notice = reply_held_text(error.removeprefix(outbox.POLICY_HOLD).lstrip(": "))
        else:
            notice = reply_failed_text(error)
        if channel is not None and thread is not None:
            self._quietly(self.notifier.post_in_thread, channel, thread, notice)

    # -- helpers -------------------------------------------------------------------------

    def tell(self, channel: str, user: str, message: str) -> None:
        """A private notice to one person (escaped here, so callers pass plain text)."""
        self._quietly(self.notifier.tell, channel, user, mrkdwn.escape(message))

    @staticmethod
    def _quietly(call: Callable[..., object], *args: object) -> None:
        # Slack shows state; the database holds it. A failed update is repaired by the next one.
        try:
            call(*args)
        except NotifierError as exc:
            log.warning("Slack update failed: %s", exc)


# The namespace of the card locks among PostgreSQL's advisory locks ("card"); the key is the id.
CARD_LOCKS = 0x63617264


def _try_lock_card(guard: Session, question_id: int) -> bool:
    """Take the card lock of a question for ``guard``'s transaction; False if another holds it.

    SQLite runs one process (and one card job), so there is nothing to exclude there.
    """
    if guard.get_bind().dialect.name != "postgresql":
        return True
    locked = guard.scalar(select(func.pg_try_advisory_xact_lock(CARD_LOCKS, question_id)))
    return bool(locked)


def _record_card(
    session: Session, question: Question, channel: str, ts: str, now: datetime
) -> None:
    """Remember where a question's card is, and open the question (once)."""
    if question.state != State.NEW:
        return
    question.card_channel, question.card_ts = channel, ts
    transition(
        session, question, State.OPEN, actor=SYSTEM, now=now, detail={"channel": channel, "ts": ts}
    )


def open_questions(sessions: sessionmaker[Session], limit: int = 20) -> list[HomeItem]:
    """The oldest questions still waiting for an answer, for the App Home tab."""
    waiting = (State.OPEN, State.PROPOSED, State.ESCALATED)
    with sessions.begin() as session:
        rows = session.execute(
            select(Question, Customer.handle)
            .join(Customer, Customer.id == Question.customer_id)
            .where(Question.state.in_(waiting))
            .order_by(Question.received_at, Question.id)
            .limit(limit)
        ).all()
        return [
            HomeItem(
                question_id=question.id,
                customer_handle=handle,
                text=question.text,
                state=question.state,
                proposal_count=card_view(session, question).proposal_count,
            )
            for question, handle in rows
        ]
