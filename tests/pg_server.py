"""Start a throwaway PostgreSQL server on 127.0.0.1 for the test suite.

The server refuses to run as root, so as root it runs as the unprivileged
user ``nobody`` (via ``runuser``); as any other user it runs as that user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"), Path("/usr/lib/postgresql/14/bin")]


def find_pg_bin() -> Path | None:
    env = os.environ.get("MIXPLAN_PG_BIN")
    candidates = [Path(env)] if env else PG_BIN_DIRS
    for d in candidates:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    bin_dir: Path
    root: Path
    port: int
    as_user: str | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        return [_runuser(), "-u", self.as_user, "--", *cmd] if self.as_user else cmd

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.root, user=self.as_user)
            os.chmod(self.root, 0o700)
        subprocess.run(
            self._cmd("initdb", "-D", str(self.data_dir), "-U", "mixplan", "--auth=trust", "-E", "UTF8", "--no-sync"),
            check=True, capture_output=True, cwd=self.root,
        )
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.data_dir), "-o", opts, "-l", str(self.root / "log.txt"), "-w", "-t", "60", "start"),
            check=True, capture_output=True, cwd=self.root,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL did not start; log:\n{(self.root / 'log.txt').read_text()}")

    def stop(self) -> None:
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop"), capture_output=True, cwd=self.root)
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        subprocess.run(
            self._cmd("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "mixplan", name),
            check=True, capture_output=True, cwd=self.root,
        )
        return f"postgresql+psycopg://mixplan@127.0.0.1:{self.port}/{name}"


def start_server() -> PgServer | None:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        return None
    as_user = "nobody" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="mixplan-pg-"))
    server = PgServer(bin_dir=bin_dir, root=root, port=free_port(), as_user=as_user)
    server.start()
    return server


def _runuser() -> str:
    """runuser lives in /sbin or /usr/sbin, which a user's PATH (or a CI's) may leave out."""
    found = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError("runuser not found (util-linux): needed to start PostgreSQL as an unprivileged user")
    return found
