"""Alembic environment: runs on the connection engine.store.session passes in,
or on ``MIXPLAN_DATABASE_URL`` / the default SQLite file from the command line."""

from __future__ import annotations

from alembic import context

from engine.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    from engine.config import Settings
    from engine.store.session import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url)
    with engine.begin() as conn:
        _run(conn)
