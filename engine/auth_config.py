"""The dashboard's sign-in settings: a TOML file with Streamlit's ``[auth]`` section, checked up front.

Streamlit's OpenID Connect support reads ``[auth]`` from its secrets: ``redirect_uri``
(the app's URL + ``/oauth2callback``), ``cookie_secret``, and the provider's
``client_id``, ``client_secret`` and ``server_metadata_url`` (in ``[auth]`` itself or
in one ``[auth.NAME]`` section per provider). A mistake there would only show
when the first user signs in; this check makes ``mixplan dashboard`` say it at start.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import InputError

try:
    import tomllib
except ImportError:  # Python 3.10: Streamlit's own dependency reads TOML too
    import toml as tomllib  # type: ignore[no-redef]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SHARED_KEYS = ("redirect_uri", "cookie_secret")
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


def check_auth_file(path: Path) -> dict:
    """The ``[auth]`` section of ``path``; InputError naming the file and the missing key otherwise."""
    if not path.is_file():
        raise InputError(f"the sign-in file {path} does not exist.", hint="point --auth-file at your auth.toml.")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # tomllib.TOMLDecodeError and toml's decode error are ValueErrors
        raise InputError(f"{path} is not valid TOML: {exc}.") from exc
    auth = doc.get("auth")
    if not isinstance(auth, dict):
        raise InputError(f"{path} has no [auth] section.", hint="see README 'Team deployment' for its keys.")
    for key in SHARED_KEYS:
        if not auth.get(key):
            raise InputError(f"{path}: [auth] lacks '{key}'.", hint="see README 'Team deployment' for its keys.")
    providers = {"auth": auth} if any(k in auth for k in PROVIDER_KEYS) else {
        f"auth.{name}": section for name, section in auth.items() if isinstance(section, dict)}
    if not providers:
        raise InputError(f"{path}: [auth] names no identity provider.",
                         hint="add client_id, client_secret and server_metadata_url to [auth].")
    for section, values in providers.items():
        for key in PROVIDER_KEYS:
            if not values.get(key):
                raise InputError(f"{path}: [{section}] lacks '{key}'.")
    return auth


def check_exposure(host: str, auth_file: Path | None, no_auth: bool) -> None:
    """A dashboard reachable from other machines needs sign-in, unless the user says --no-auth."""
    if host in LOOPBACK_HOSTS or auth_file is not None or no_auth:
        return
    raise InputError(
        f"refusing to listen on {host} without sign-in: anyone who can reach this machine could read, "
        "delete and train.",
        hint="configure sign-in with --auth-file auth.toml (or MIXPLAN_AUTH_FILE), or pass --no-auth "
             "if a proxy in front of it signs users in.",
    )
