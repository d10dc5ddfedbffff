"""What Slack listeners get to work with: the use cases and the settings, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.escalation_flow import EscalationFlow
from bot.roles import Roles
from bot.runtime_config import RuntimeConfig
from bot.workflow import Workflow


@dataclass(frozen=True)
class CareContext:
    settings: Settings
    sessions: sessionmaker[Session]
    workflow: Workflow
    clock: Callable[[], datetime]
    escalations: EscalationFlow
    roles: Roles
    config: RuntimeConfig
