"""Engine and session factory; the schema is created or upgraded on first use."""

from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.config import Settings
from engine.errors import BusyError, StoreError

log = logging.getLogger(__name__)

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "db"
T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 30  # how long SQLite waits for another writer's lock before it says "locked"
WRITE_ATTEMPTS = 4  # a write that meets a lock or a concurrent insert of the same key is retried this often


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _parse(url: str):
    try:
        return make_url(url)
    except Exception as exc:  # noqa: BLE001  SQLAlchemy raises ArgumentError or ValueError for malformed URLs
        raise StoreError(f"'{url}' is not a database URL ({exc}). Fix: give a URL such as "
                         "sqlite:////path/to/mixplan.sqlite or postgresql://user@host/dbname.") from None


def make_engine(url: str, *, create_folder: bool = False) -> Engine:
    """A new SQLAlchemy engine for ``url``. A SQLite file's folder must exist unless ``create_folder``
    (the default database under MIXPLAN_HOME): a mistyped path must not quietly become a new folder.
    SQL parameters are never put into error messages (they can be whole files of data)."""
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).expanduser().parent
            if create_folder:
                folder.mkdir(parents=True, exist_ok=True)
            elif not folder.is_dir():
                raise StoreError(f"the folder {folder} of the database file does not exist. "
                                 "Fix: create it first, or give a path in an existing folder.")
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_SECONDS}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"the database URL names '{backend}'; mixplan stores its data in SQLite or PostgreSQL. "
                         "Fix: give a sqlite:/// or postgresql:// URL.")
    try:
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    except Exception as exc:  # noqa: BLE001  a missing driver or a bad option in the URL
        raise StoreError(f"cannot use the database URL {parsed.render_as_string(hide_password=True)}: {exc}.") from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (creates it on an empty database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: settings), schema upgraded once."""
    settings = Settings.from_env()
    url = url or settings.database_url
    with _LOCK:
        if url not in _ENGINES:
            engine = make_engine(url, create_folder=url == settings.default_database_url)
            try:
                upgrade(engine)
            except DBAPIError as exc:
                engine.dispose()
                raise store_error(exc, f"cannot open the database {engine.url.render_as_string(hide_password=True)}") from exc
            _ENGINES[url] = engine
        return _ENGINES[url]


def dispose_engines() -> None:
    """Forget every cached engine (tests, and after a fork)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on any error."""
    factory = sessionmaker(get_engine(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__


def is_busy(exc: DBAPIError) -> bool:
    """A lock held by another writer (SQLite) or a serialization failure / deadlock (PostgreSQL)."""
    text = str(exc.orig).lower()
    return any(part in text for part in ("database is locked", "database table is locked", "database is busy",
                                         "could not serialize", "deadlock detected"))


def _is_unique_collision(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique constraint" in text or "duplicate key" in text


def store_error(exc: DBAPIError, what: str = "the database could not be used") -> StoreError:
    """A driver error as one line a user can act on: never the SQL, never its parameters."""
    text = str(exc.orig).lower()
    if is_busy(exc):
        return BusyError("the database is busy: another mixplan process kept it locked. Nothing was changed. "
                         "Fix: try again when the other import, fit or plan has finished.")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"{what}: the database file is read-only. Fix: make the file and its folder writable, "
                          "or give another database with --db.")
    if "disk is full" in text or "no space left" in text or "disk full" in text:
        return StoreError(f"{what}: the disk is full; nothing was changed. Fix: free some space and run it again.")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(f"{what}: the file is not a mixplan database or is damaged. "
                          "Fix: restore it from a copy, or give another database with --db.")
    if "unable to open" in text:
        return StoreError(f"{what}: the database file cannot be opened (missing folder or no permission). "
                          "Fix: check the path and its permissions.")
    if isinstance(exc, OperationalError):
        return StoreError(f"{what}: {_first_line(exc)}. Fix: check MIXPLAN_DATABASE_URL or --db "
                          "(server running? credentials?).")
    return StoreError(f"{what}: the database refused the change ({_first_line(exc)}).")


def retry_write(write: Callable[[], T], *, attempts: int | None = None) -> T:
    """Run ``write`` (one whole transaction) again while another writer holds the lock or inserted the same
    key first; after ``attempts`` tries raise "the database is busy". ``write`` must be safe to repeat:
    each try starts from the committed state, so a retried import sees the other import's rows."""
    attempts = attempts or WRITE_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except IntegrityError as exc:
            if not _is_unique_collision(exc):
                raise
            last: DBAPIError = exc
        except OperationalError as exc:
            if not is_busy(exc):
                raise
            last = exc
        log.info("write attempt %d of %d met a concurrent writer: %s", attempt, attempts, _first_line(last))
        if attempt < attempts:
            time.sleep(random.uniform(0.05, 0.3) * attempt)  # jitter, so two retrying writers do not meet again
    raise BusyError(f"the database is busy: {attempts} tries met another writer ({_first_line(last)}). "
                    "Nothing was changed. Fix: try again when the other import, fit or plan has finished.") from last


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())
