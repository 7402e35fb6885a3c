"""The store: models, engine/session factory, queries."""

from engine.store.models import (  # noqa: F401
    Action,
    Base,
    Domain,
    EvalTarget,
    IngestBatch,
    Job,
    LawFit,
    Measurement,
    PendingRun,
    Plan,
    Project,
    Run,
)
from engine.store.session import dispose_engines, get_engine, make_engine, session_scope, upgrade  # noqa: F401
