"""Settings: the only place environment variables are read."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError


def default_home() -> Path:
    """Where mixplan keeps its files: ``$MIXPLAN_HOME`` or ``~/.mixplan``."""
    return Path(os.environ.get("MIXPLAN_HOME", Path.home() / ".mixplan")).expanduser()


DEFAULT_MAX_UPLOAD_MB = 200


def _positive_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) <= 0:
        raise InputError(f"{name}={text!r} is not a positive whole number.", hint=f"e.g. {name}={default}.")
    return int(text)


@dataclass(frozen=True)
class Settings:
    """Runtime configuration.

    database_url: SQLAlchemy URL; ``MIXPLAN_DATABASE_URL`` or the SQLite file
        ``$MIXPLAN_HOME/mixplan.sqlite`` (created on first use).
    home: folder for the default database, prepared data and checkpoints.
    seed: default random seed for fits, designs and trainings.
    max_upload_mb: largest log file an import reads (``MIXPLAN_MAX_UPLOAD_MB``); the dashboard's
        ``server.maxUploadSize`` is set to the same figure.
    checkpoint_dir: where training checkpoints live; ``MIXPLAN_CHECKPOINT_DIR`` or
        ``$MIXPLAN_HOME/checkpoints``. On a cluster it must be a path every node can read,
        so a run retried on another node resumes from its checkpoint.
    auth_file: ``MIXPLAN_AUTH_FILE``, a TOML file with Streamlit's ``[auth]`` section: the
        dashboard's sign-in (OpenID Connect). None: no sign-in.
    data_root: the only folder under which the dashboard reads or writes server paths
        (prepared training data); ``MIXPLAN_DATA_ROOT`` or ``$MIXPLAN_HOME/data``.
    """

    database_url: str
    home: Path
    seed: int = 0
    max_upload_mb: int = 200
    checkpoint_dir: Path | None = None
    auth_file: Path | None = None
    data_root: Path | None = None

    @property
    def default_database_url(self) -> str:
        """The SQLite file under ``home``: the one database whose folder mixplan creates itself."""
        return f"sqlite:///{self.home / 'mixplan.sqlite'}"

    @classmethod
    def from_env(cls) -> "Settings":
        home = default_home()
        url = os.environ.get("MIXPLAN_DATABASE_URL") or f"sqlite:///{home / 'mixplan.sqlite'}"
        checkpoints = Path(os.environ.get("MIXPLAN_CHECKPOINT_DIR") or home / "checkpoints").expanduser()
        auth = os.environ.get("MIXPLAN_AUTH_FILE")
        data_root = Path(os.environ.get("MIXPLAN_DATA_ROOT") or home / "data").expanduser()
        return cls(database_url=url, home=home, seed=_seed(os.environ.get("MIXPLAN_SEED", "0")),
                   max_upload_mb=_positive_int("MIXPLAN_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB),
                   checkpoint_dir=checkpoints, auth_file=Path(auth).expanduser() if auth else None,
                   data_root=data_root)


def _seed(text: str) -> int:
    try:
        return int(text.strip() or "0")
    except ValueError:
        raise InputError(f"MIXPLAN_SEED '{text}' is not a whole number.", hint="set e.g. MIXPLAN_SEED=0, or unset it.") from None


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
"""Logs of the built-in demo project (shipped with the source tree)."""
