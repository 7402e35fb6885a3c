"""jobs for every long task, pending (suggested) runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('message', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('result', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default=sa.false()))
    # Unique among live jobs only: a finished job's key may come back.
    op.create_index('uq_job_key_active', 'job', ['key'], unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE)

    op.create_table('pending_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('mixture', sa.JSON(), nullable=False),
    sa.Column('budget_tokens', sa.Float(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('spread', sa.Float(), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], name=op.f('fk_pending_run_plan_id_plan'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_pending_run_project_id_project'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_pending_run_run_id_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_run')),
    sa.UniqueConstraint('project_id', 'name', name=op.f('uq_pending_run_project_id'))
    )
    with op.batch_alter_table('pending_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_run_project_id'), ['project_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pending_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_run_project_id'))
    op.drop_table('pending_run')
    op.drop_index('uq_job_key_active', table_name='job')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('cancel_requested')
        batch_op.drop_column('result')
        batch_op.drop_column('message')
        batch_op.drop_column('key')
