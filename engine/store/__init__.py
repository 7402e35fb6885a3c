"""The store: models, engine/session factory, queries."""

from engine.store.models import (  # noqa: F401
    Action,
    Base,
    Domain,
    EvalTarget,
    IngestBatch,
    IngestStage,
    Job,
    LawFit,
    Measurement,
    PendingRun,
    Plan,
    Project,
    Run,
    StagedMeasurement,
    StagedRun,
)
from engine.store.session import dispose_engines, get_engine, make_engine, session_scope, upgrade  # noqa: F401
