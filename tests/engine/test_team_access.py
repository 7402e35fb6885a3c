"""Team access: the dashboard refuses to face the network without sign-in; every stored action names its actor."""

from __future__ import annotations

import getpass

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from engine.actions import acting_as, current_actor
from engine.auth_config import check_auth_file
from engine.cli import app
from engine.errors import InputError
from engine.services.projects import create_project, delete_project
from engine.store import Action, session_scope

GOOD_AUTH = """[auth]
redirect_uri = "http://127.0.0.1:8501/oauth2callback"
cookie_secret = "s3cret"
client_id = "mixplan"
client_secret = "x"
server_metadata_url = "http://127.0.0.1:9400/.well-known/openid-configuration"
"""


def test_dashboard_on_a_network_address_refuses_without_sign_in(tmp_path, monkeypatch):
    monkeypatch.delenv("MIXPLAN_AUTH_FILE", raising=False)
    result = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code != 0
    assert "refusing to listen on 0.0.0.0 without sign-in" in result.output and "--no-auth" in result.output


def test_a_broken_sign_in_file_is_refused_with_the_missing_key(tmp_path):
    path = tmp_path / "auth.toml"
    path.write_text(GOOD_AUTH.replace('cookie_secret = "s3cret"\n', ""))
    result = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0", "--auth-file", str(path)])
    assert result.exit_code != 0 and f"{path}: [auth] lacks 'cookie_secret'" in result.output
    path.write_text(GOOD_AUTH.replace('client_secret = "x"\n', ""))
    with pytest.raises(InputError, match=r"\[auth\] lacks 'client_secret'"):
        check_auth_file(path)
    path.write_text(GOOD_AUTH)
    assert check_auth_file(path)["client_id"] == "mixplan"
    path.write_text('[auth]\nredirect_uri = "u"\ncookie_secret = "c"\n[auth.google]\nclient_id = "a"\n')
    with pytest.raises(InputError, match=r"\[auth.google\] lacks 'client_secret'"):
        check_auth_file(path)


def test_actions_record_the_cli_user_or_the_signed_in_user(tmp_path, sqlite_url):
    csv = tmp_path / "runs.csv"
    csv.write_text("run_id,tokens,mix:web,mix:code,loss:web\nr1,1000,0.7,0.3,3.5\nr2,1000,0.2,0.8,3.9\n")
    result = CliRunner().invoke(app, ["ingest", str(csv), "--project", "p", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    with acting_as("alice@example.org"):
        create_project("q", url=sqlite_url)
        delete_project("q", url=sqlite_url)
    assert current_actor() == f"cli:{getpass.getuser()}"
    with session_scope(sqlite_url) as s:
        rows = [(a.actor, a.kind, a.project) for a in s.scalars(select(Action).order_by(Action.id))]
    assert rows == [(f"cli:{getpass.getuser()}", "upload", "p"), ("alice@example.org", "create-project", "q"),
                    ("alice@example.org", "delete-project", "q")]
