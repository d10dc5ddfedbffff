"""escalation and support backend

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:26:22.549354
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('connector_states',
    sa.Column('connector', sa.String(length=16), nullable=False),
    sa.Column('enabled_at', sa.DateTime(), nullable=False),
    sa.Column('first_event_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('connector', name=op.f('pk_connector_states'))
    )
    op.create_table('external_refs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('connector', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], name=op.f('fk_external_refs_question_id_questions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_external_refs')),
    sa.UniqueConstraint('question_id', 'connector', name=op.f('uq_external_refs_question_id'))
    )
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('ts', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], name=op.f('fk_notifications_question_id_questions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('question_id', 'kind', name=op.f('uq_notifications_question_id'))
    )
    op.create_index(op.f('ix_notifications_state'), 'notifications', ['state'], unique=False)
    op.create_table('support_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], name=op.f('fk_support_events_question_id_questions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_support_events'))
    )
    op.create_index(op.f('ix_support_events_question_id'), 'support_events', ['question_id'], unique=False)
    op.create_table('deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('connector', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['support_events.id'], name=op.f('fk_deliveries_event_id_support_events')),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], name=op.f('fk_deliveries_question_id_questions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('event_id', 'connector', name=op.f('uq_deliveries_event_id'))
    )
    op.create_index('ix_deliveries_due', 'deliveries', ['connector', 'state', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_deliveries_question_id'), 'deliveries', ['question_id'], unique=False)
    op.add_column('questions', sa.Column('answered_by', sa.String(length=64), nullable=True))
    op.add_column('questions', sa.Column('escalate_again_at', sa.DateTime(), nullable=True))
    op.add_column('questions', sa.Column('nudged_at', sa.DateTime(), nullable=True))
    op.add_column('questions', sa.Column('escalated_at', sa.DateTime(), nullable=True))
    op.add_column('questions', sa.Column('escalated_again_at', sa.DateTime(), nullable=True))
    op.add_column('questions', sa.Column('escalation_channel', sa.String(length=32), nullable=True))
    op.add_column('questions', sa.Column('escalation_ts', sa.String(length=32), nullable=True))
    op.create_index(op.f('ix_questions_escalate_again_at'), 'questions', ['escalate_again_at'], unique=False)
    op.create_index(op.f('ix_questions_escalate_at'), 'questions', ['escalate_at'], unique=False)
    op.create_index(op.f('ix_questions_nudge_at'), 'questions', ['nudge_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_questions_nudge_at'), table_name='questions')
    op.drop_index(op.f('ix_questions_escalate_at'), table_name='questions')
    op.drop_index(op.f('ix_questions_escalate_again_at'), table_name='questions')
    op.drop_column('questions', 'escalation_ts')
    op.drop_column('questions', 'escalation_channel')
    op.drop_column('questions', 'escalated_again_at')
    op.drop_column('questions', 'escalated_at')
    op.drop_column('questions', 'nudged_at')
    op.drop_column('questions', 'escalate_again_at')
    op.drop_column('questions', 'answered_by')
    op.drop_index(op.f('ix_deliveries_question_id'), table_name='deliveries')
    op.drop_index('ix_deliveries_due', table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_index(op.f('ix_support_events_question_id'), table_name='support_events')
    op.drop_table('support_events')
    op.drop_index(op.f('ix_notifications_state'), table_name='notifications')
    op.drop_table('notifications')
    op.drop_table('external_refs')
    op.drop_table('connector_states')
