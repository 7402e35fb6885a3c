"""SQLAlchemy 2 models: the store's tables.

Mixtures are stored as JSON objects ``{domain name: share}`` on the run (one
row per run, not per run x domain: 100k runs x 20 domains would otherwise be
2M rows for data that is always read whole). Measurements are rows, one per
run x target x tokens seen, because learning curves are queried by them.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    # Law chosen by the user per objective key, overriding the CV winner.
    law_overrides: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    domains: Mapped[list["Domain"]] = relationship(back_populates="project", cascade="all, delete-orphan")
    targets: Mapped[list["EvalTarget"]] = relationship(back_populates="project", cascade="all, delete-orphan")
    runs: Mapped[list["Run"]] = relationship(back_populates="project", cascade="all, delete-orphan")


class Domain(Base):
    """A training data source that gets a share of the mixture."""

    __tablename__ = "domain"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    unique_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Free-form labels such as {"license": "cc-by-sa", "quality": "high"} or ["noncommercial"].
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    data_path: Mapped[str | None] = mapped_column(Text, nullable=True)

    project: Mapped[Project] = relationship(back_populates="domains")


class EvalTarget(Base):
    """A measured metric, e.g. a validation loss; ``direction`` is 'lower' or 'higher' (better)."""

    __tablename__ = "eval_target"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(10), default="lower")
    unit: Mapped[str] = mapped_column(String(40), default="")

    project: Mapped[Project] = relationship(back_populates="targets")


class Run(Base):
    """One proxy training: a mixture, its scale and where it came from."""

    __tablename__ = "run"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))  # the run id as the user's files call it
    mixture: Mapped[dict] = mapped_column(JSON)  # {domain name: share}, sums to 1
    model_params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    seq_len: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokenizer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    framework: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Any other key the logs carried (learning rate, batch size, git sha...): kept and shown.
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)
    method: Mapped[str] = mapped_column(String(40), default="static")  # static | aioli | stratified
    # Online methods: [{"tokens": t, "mixture": {...}}, ...]
    schedule: Mapped[list | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="complete")  # complete | running | failed
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batch.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    project: Mapped[Project] = relationship(back_populates="runs")


class Measurement(Base):
    """One value of one eval target for one run at one point (tokens seen; NULL = end of run, count unknown)."""

    __tablename__ = "measurement"
    __table_args__ = (
        UniqueConstraint("run_id", "target_id", "tokens_seen"),
        Index("ix_measurement_target", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("eval_target.id", ondelete="CASCADE"))
    tokens_seen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    value: Mapped[float] = mapped_column(Float)


class IngestBatch(Base):
    """One accepted upload (a file or a pair): its content hash makes re-uploads a no-op."""

    __tablename__ = "ingest_batch"
    __table_args__ = (UniqueConstraint("project_id", "content_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    files: Mapped[list] = mapped_column(JSON)
    format: Mapped[str] = mapped_column(String(40))
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    notes: Mapped[list] = mapped_column(JSON, default=list)  # e.g. renormalised rows
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LawFit(Base):
    """A fitted law for one objective, with its CV figures and bootstrap refits."""

    __tablename__ = "law_fit"
    __table_args__ = (Index("ix_law_fit_lookup", "project_id", "objective", "law", "data_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    law: Mapped[str] = mapped_column(String(60))
    objective: Mapped[str] = mapped_column(String(400))  # a target name, "mean", or a weighted spec
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    params: Mapped[dict] = mapped_column(JSON)
    cv_metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    cv_predictions: Mapped[dict] = mapped_column(JSON, default=dict)  # held-out predictions per run
    bootstrap: Mapped[dict] = mapped_column(JSON, default=dict)  # params of refits / interval summary
    # params["smooth"] and bootstrap["refits_skipped"] again, as columns: fit summaries read them without
    # parsing the JSON documents (tens of MB for a GP or the stack on a 110-target swarm)
    smooth: Mapped[bool] = mapped_column(Boolean, default=False)
    refits_skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    data_hash: Mapped[str] = mapped_column(String(64))
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Plan(Base):
    """A recommended mixture for a budget under constraints, with baselines."""

    __tablename__ = "plan"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    law_fit_ids: Mapped[list] = mapped_column(JSON, default=list)
    objective: Mapped[str] = mapped_column(String(400))
    budget_tokens: Mapped[float] = mapped_column(Float)
    model_params: Mapped[float | None] = mapped_column(Float, nullable=True)
    constraints: Mapped[dict] = mapped_column(JSON, default=dict)
    mixture: Mapped[dict] = mapped_column(JSON)
    result: Mapped[dict] = mapped_column(JSON, default=dict)  # predictions, intervals, epochs, baselines
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """Long work (a fit, plan, sweep, suggestion or training): state, progress and heartbeat.

    ``key`` (kind + project + settings hash) is unique among queued and running jobs, so two
    browser tabs asking for the same fit share one job; ``cancel_requested`` is how a page
    stops a job that runs in another thread or process.
    """

    __tablename__ = "job"
    __table_args__ = (
        Index("uq_job_key_active", "key", unique=True,
              sqlite_where=text("state IN ('queued', 'running')"),
              postgresql_where=text("state IN ('queued', 'running')")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))  # train | sweep | fit | plan | budget-sweep | suggest
    state: Mapped[str] = mapped_column(String(20), default="queued")  # queued|running|done|failed|cancelled
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")  # the latest progress event, for people
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Action(Base):
    """Who did what: one row per stored action (upload, fit, plan, project deletion, training).

    The project is kept by name, without a foreign key, so the row of a deletion
    outlives the project it deleted.
    """

    __tablename__ = "action"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(320), index=True)  # the signed-in user, or cli:<OS user>
    kind: Mapped[str] = mapped_column(String(40))  # upload | fit | plan | create-project | delete-project | training
    project: Mapped[str] = mapped_column(String(200), index=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PendingRun(Base):
    """A suggested proxy run not yet trained (Optuna's ask): its mixture, budget and why it was picked.

    Results that arrive later (trained here or uploaded) complete it through ``run_id``.
    ``round`` groups the runs suggested together; ``plan_id`` is the plan they were meant to sharpen.
    """

    __tablename__ = "pending_run"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    round: Mapped[int] = mapped_column(Integer)
    mixture: Mapped[dict] = mapped_column(JSON)
    budget_tokens: Mapped[float | None] = mapped_column(Float, nullable=True)  # proxy tokens to train it for
    reason: Mapped[str] = mapped_column(Text, default="")
    spread: Mapped[float | None] = mapped_column(Float, nullable=True)  # bootstrap std of the objective there
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | running | done
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan.id", ondelete="SET NULL"), nullable=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IngestStage(Base):
    """An import in progress: its runs and measurements wait in the staged_* tables, committed a chunk at a
    time (so no transaction holds the write lock for the whole file), and move into ``run`` and
    ``measurement`` in one short final transaction. Nothing reads the staged tables but the import itself;
    a stage whose process died (``pid`` gone on ``host``, or no heartbeat for a while) is deleted by the
    next import or ``mixplan db clean``.
    """

    __tablename__ = "ingest_stage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(200))  # by name: the project may not exist until the end
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StagedRun(Base):
    """A run an import will add (same columns as ``run``); only the import that staged it reads it."""

    __tablename__ = "staged_run"
    __table_args__ = (UniqueConstraint("stage_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("ingest_stage.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    mixture: Mapped[dict] = mapped_column(JSON)
    model_params: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    seq_len: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokenizer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    framework: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source_file: Mapped[str | None] = mapped_column(Text, nullable=True)
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)
    method: Mapped[str] = mapped_column(String(40), default="static")
    content_hash: Mapped[str] = mapped_column(String(64), default="")


class StagedMeasurement(Base):
    """A measurement an import will add: of a staged run (``staged_run_id``) or of a run already stored
    (``run_id``); the target by name, since the import creates its new targets only at the end."""

    __tablename__ = "staged_measurement"
    __table_args__ = (
        Index("ix_staged_measurement_staged_run", "stage_id", "staged_run_id"),
        Index("ix_staged_measurement_run", "stage_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("ingest_stage.id", ondelete="CASCADE"))
    staged_run_id: Mapped[int | None] = mapped_column(ForeignKey("staged_run.id", ondelete="CASCADE"), nullable=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), nullable=True)
    target: Mapped[str] = mapped_column(String(200))
    tokens_seen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    value: Mapped[float] = mapped_column(Float)
