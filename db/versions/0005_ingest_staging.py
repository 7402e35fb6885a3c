"""ingest staging: an import commits its rows a chunk at a time into staged_* tables, then moves them at once

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ingest_stage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_stage'))
    )
    op.create_table('staged_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('mixture', sa.JSON(), nullable=False),
    sa.Column('model_params', sa.BigInteger(), nullable=True),
    sa.Column('tokens', sa.BigInteger(), nullable=True),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('seq_len', sa.Integer(), nullable=True),
    sa.Column('tokenizer', sa.String(length=200), nullable=True),
    sa.Column('framework', sa.String(length=200), nullable=True),
    sa.Column('source_file', sa.Text(), nullable=True),
    sa.Column('provenance', sa.JSON(), nullable=False),
    sa.Column('method', sa.String(length=40), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['stage_id'], ['ingest_stage.id'], name=op.f('fk_staged_run_stage_id_ingest_stage'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staged_run')),
    sa.UniqueConstraint('stage_id', 'name', name=op.f('uq_staged_run_stage_id'))
    )
    op.create_table('staged_measurement',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('staged_run_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('tokens_seen', sa.BigInteger(), nullable=True),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_staged_measurement_run_id_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_id'], ['ingest_stage.id'], name=op.f('fk_staged_measurement_stage_id_ingest_stage'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['staged_run_id'], ['staged_run.id'], name=op.f('fk_staged_measurement_staged_run_id_staged_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staged_measurement'))
    )
    with op.batch_alter_table('staged_measurement', schema=None) as batch_op:
        batch_op.create_index('ix_staged_measurement_run', ['stage_id', 'run_id'], unique=False)
        batch_op.create_index('ix_staged_measurement_staged_run', ['stage_id', 'staged_run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staged_measurement', schema=None) as batch_op:
        batch_op.drop_index('ix_staged_measurement_staged_run')
        batch_op.drop_index('ix_staged_measurement_run')
    op.drop_table('staged_measurement')
    op.drop_table('staged_run')
    op.drop_table('ingest_stage')
