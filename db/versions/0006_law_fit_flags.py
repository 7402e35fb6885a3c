"""law_fit flags as columns: smooth, refits_skipped (read by every fit summary)

Choosing a law, the Fit page and the planner read fit *summaries*; their two flags were read by JSON path
from ``params`` and ``bootstrap``, which SQLite parses whole to find one key (21-30 MB for the stack's and
the GP's rows of 512 runs x 110 targets: 0.05-0.07 s a summary query). Existing rows are filled from the
same JSON paths.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('law_fit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('smooth', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('refits_skipped', sa.Boolean(), nullable=False, server_default=sa.false()))
    law_fit = sa.table('law_fit', sa.column('id', sa.Integer()), sa.column('params', sa.JSON()),
                       sa.column('bootstrap', sa.JSON()), sa.column('smooth', sa.Boolean()),
                       sa.column('refits_skipped', sa.Boolean()))
    connection = op.get_bind()
    flags = connection.execute(sa.select(law_fit.c.id, law_fit.c.params['smooth'].as_boolean(),
                                         law_fit.c.bootstrap['refits_skipped'].as_boolean())).all()
    for fit_id, smooth, skipped in flags:
        if smooth or skipped:
            connection.execute(law_fit.update().where(law_fit.c.id == fit_id)
                               .values(smooth=bool(smooth), refits_skipped=bool(skipped)))


def downgrade() -> None:
    with op.batch_alter_table('law_fit', schema=None) as batch_op:
        batch_op.drop_column('refits_skipped')
        batch_op.drop_column('smooth')
