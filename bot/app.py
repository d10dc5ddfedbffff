"""Builds crowdcare: database, Slack app, X channel, workflow and scheduled jobs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from slack_bolt import App
from sqlalchemy.exc import IntegrityError

from bot import backend_events, support
from bot.config import Settings
from bot.connectors.webhook import WebhookConnector
from bot.connectors.zendesk import ZendeskConnector
from bot.context import CareContext
from bot.escalation_flow import EscalationFlow, EscalationTargets
from bot.pacing import ChannelPacer
from bot.polling import poll_mentions
from bot.ports import SocialChannel
from bot.quota import record_quotas
from bot.reply_policy import signer
from bot.roles import NoDirectory, Roles
from bot.runtime_config import RuntimeConfig
from bot.scheduler import Jobs
from bot.server import HttpApp
from bot.slack_directory import SlackDirectory
from bot.slack_notifier import SlackNotifier, make_web_client
from bot.weekly import post_weekly_summary
from bot.workflow import Workflow
from bot.x_channel import XChannel
from handlers import register_listeners
from storage.clock import DatabaseClock
from storage.db import make_engine, ping, session_factory
from storage.migrate import upgrade

log = logging.getLogger(__name__)

LISTENER_THREADS = 10  # Slack work after the ack (votes, forms); the database pool allows 20


class _DropTokenSkipped(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment even when given a client holding it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("slack_bolt.App").addFilter(_DropTokenSkipped())


class Crowdcare:
    """One running crowdcare: call :meth:`start` for the jobs, :meth:`stop` to shut down."""

    def __init__(
        self,
        settings: Settings,
        *,
        channel: SocialChannel | None = None,
        clock: Callable[[], datetime] | None = None,
        migrate: bool | None = None,
    ) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        # Deadlines are compared against the database's time, shared by every process.
        self.clock = clock if clock is not None else DatabaseClock(self.engine)
        # The embedded SQLite default migrates itself; PostgreSQL runs `python -m bot migrate`.
        if migrate if migrate is not None else self.engine.dialect.name == "sqlite":
            upgrade(self.engine)
        self.sessions = session_factory(self.engine)
        # One pacer for every post, so a 429's Retry-After holds back the whole channel.
        self.pacer = ChannelPacer(settings.slack_channel_interval)
        self.web_client = make_web_client(
            settings.slack_bot_token, settings.slack_api_url, pacer=self.pacer
        )
        self.channel = channel if channel is not None else _x_channel(settings)
        self.jobs = Jobs()
        self.config = RuntimeConfig(self.sessions, settings, self.clock, settings.configured)
        directory = SlackDirectory(self.web_client) if settings.slack_configured else NoDirectory()
        self.roles = Roles(
            self.sessions,
            admins=settings.admins,
            directory=directory,
            pool_mode=self.config.pool_mode,
            clock=self.clock,
        )
        self.workflow = Workflow(
            self.sessions,
            SlackNotifier(self.web_client, self.pacer),
            questions_channel=settings.questions_channel or "",
            votes_to_select=self.config.votes_to_select,
            clock=self.clock,
            wake_outbox=lambda: self.jobs.wake("send_replies"),
            send_lease=settings.send_lease,
            reply_policy=self.config.reply_policy,
            signature_for_user=signer(self.config.signature, directory.display_name),
        )
        self.escalations = EscalationFlow(
            self.workflow,
            EscalationTargets(
                escalation_channel=settings.escalation_channel,
                oncall_group=settings.oncall_group,
                supervisor_group=settings.supervisor_group,
                nudge_mention=settings.nudge_mention,
            ),
            hours=self.config.business_hours,
            lease=settings.send_lease,
        )
        self.workflow.on_decided = self.escalations.refresh_escalations
        self.workflow.wake_cards = lambda: self.jobs.wake("post_cards")
        self.connectors = _connectors(settings)
        # Bolt runs listeners after the ack on this pool; ours, so stop() can wait for them.
        self.listeners = ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="bolt")
        self.bolt = App(
            client=self.web_client,
            signing_secret=settings.slack_signing_secret,
            process_before_response=False,
            listener_executor=self.listeners,
        )
        self.context = CareContext(
            settings,
            self.sessions,
            self.workflow,
            self.clock,
            self.escalations,
            self.roles,
            self.config,
        )
        register_listeners(self.bolt, self.context)
        self._schedule()

    def _schedule(self) -> None:
        settings = self.settings
        self.jobs.every("post_cards", settings.outbox_seconds, self.workflow.post_new_cards)
        self.jobs.every("sweep", settings.sweep_seconds, self.escalations.sweep)
        # Settings changed with /care config in another process arrive within seconds.
        self.jobs.every("settings", 5, self.config.refresh)
        self.jobs.every(
            "notifications", settings.outbox_seconds, self.escalations.post_due_notifications
        )
        if self.connectors:
            self.jobs.every("support_deliveries", settings.outbox_seconds, self.deliver_support)
        weekly = settings.weekly_summary_channel
        if weekly:
            self.jobs.every(
                "weekly_summary",
                3600,
                lambda: post_weekly_summary(
                    self.sessions, self.workflow.notifier, weekly, self.clock
                ),
            )
        channel = self.channel
        if channel is None:
            log.warning("X is not configured (X_API_KEY etc.): not reading mentions or replying.")
            # Questions asked with /care ask are still answered in Slack.
            self.jobs.every("send_replies", settings.outbox_seconds, self.workflow.answer_in_slack)
            return
        interval = timedelta(seconds=settings.x.poll_seconds)

        def poll() -> None:
            outcome = poll_mentions(
                self.sessions,
                channel,
                policy=self.config.escalation_policy,
                clock=self.clock,
                interval=interval,
            )
            if outcome.stored:
                self.jobs.wake("post_cards")
            self.remember_quotas(channel)

        def send() -> None:
            reports = self.workflow.send_due_replies(channel)
            if reports:
                self.remember_quotas(channel)

        self.jobs.every("poll_x", settings.x.poll_seconds, poll)
        self.jobs.every("send_replies", settings.outbox_seconds, send)

    def remember_quotas(self, channel: SocialChannel) -> None:
        """Store what the channel's API still allows, for `/care stats` in any process."""
        quotas = channel.quotas()
        if not quotas:
            return
        try:
            with self.sessions.begin() as session:
                record_quotas(session, channel.name, quotas, self.clock())
        except IntegrityError:
            pass  # another process stored the first report at the same moment; next time

    def deliver_support(self) -> None:
        """Forward new support events to every configured connector."""
        names = [connector.name for connector in self.connectors]
        support.plan_deliveries(self.sessions, names, now=self.clock())
        for connector in self.connectors:
            support.deliver_due(
                self.sessions, connector, clock=self.clock, lease=self.settings.send_lease
            )

    def http_app(self, wall_clock: Callable[[], float] = time.time) -> HttpApp:
        """The WSGI app for HTTP mode; `/backend/events` is on when a webhook secret is set."""
        secret = self.settings.support.webhook_secret
        backend = None
        if secret:

            def backend(body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
                return backend_events.handle(
                    body,
                    headers,
                    secret=secret,
                    solve=self.escalations.solved_elsewhere,
                    now=wall_clock(),
                )

        return HttpApp(
            self.bolt,
            self.healthy,
            self.settings.slack_signing_secret or "",
            clock=wall_clock,
            backend=backend,
        )

    def healthy(self) -> bool:
        """True when the database answers."""
        return ping(self.engine)

    def start(self) -> None:
        """Start the periodic jobs (polling, cards, replies)."""
        for connector in self.connectors:
            support.enable(self.sessions, connector.name, self.clock())
        self.jobs.start()

    def stop(self) -> None:
        """Stop the jobs and the listeners still at work, then release database connections."""
        self.jobs.shutdown()
        # A listener still running after its ack holds a connection; disposing the engine under
        # it would leave that connection open for good.
        self.listeners.shutdown(wait=True)
        if self.channel is not None:
            self.channel.close()
        for connector in self.connectors:
            connector.close()
        self.engine.dispose()


def _connectors(settings: Settings) -> list[support.Connector]:
    conf = settings.support
    connectors: list[support.Connector] = []
    if conf.webhook_url and conf.webhook_secret:
        connectors.append(WebhookConnector(conf.webhook_url, conf.webhook_secret))
    if conf.zendesk_configured:
        connectors.append(
            ZendeskConnector(
                subdomain=conf.zendesk_subdomain or "",
                email=conf.zendesk_email or "",
                api_token=conf.zendesk_api_token or "",
                api_url=conf.zendesk_api_url,
                ticket_on=conf.zendesk_ticket_on,
            )
        )
    return connectors


def _x_channel(settings: Settings) -> SocialChannel | None:
    x = settings.x
    if not x.configured:
        return None
    return XChannel(
        api_url=x.api_url,
        bearer_token=x.bearer_token,
        api_key=x.api_key,
        api_secret=x.api_secret,
        access_token=x.access_token,
        access_token_secret=x.access_token_secret,
        user_id=x.user_id,
    )
