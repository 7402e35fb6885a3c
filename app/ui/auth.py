"""Sign-in gate: Streamlit's own OpenID Connect (``st.login`` / ``st.user``, Authlib underneath).

Sign-in is on when the server's secrets hold an ``[auth]`` section (``mixplan
dashboard --auth-file``, see README "Team deployment"). Then a signed-out visitor
gets only the sign-in page: the gate runs before any page is registered, so no
other page, and no action, is reachable. Every stored action of a signed-in user
is recorded under that user (``engine.actions``).
"""

from __future__ import annotations

import streamlit as st

from streamlit.runtime.scriptrunner import get_script_run_ctx

from engine.actions import use_actor_source

ANONYMOUS = "anonymous"  # the actor of a dashboard that runs without sign-in (loopback only, or --no-auth)


def sign_in_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all (StreamlitSecretNotFoundError)
        return False


def user_label() -> str:
    """The signed-in user as the action log names them: e-mail, else username, else subject."""
    for claim in ("email", "preferred_username", "name", "sub"):
        value = st.user.get(claim)
        if value:
            return str(value)
    return "unknown user"


def _sign_in_page() -> None:
    st.title("mixplan")
    st.text("Sign in to see and change this team's projects.")
    st.button("Sign in", type="primary", on_click=st.login)


def require_sign_in() -> None:
    """Stop the script at the sign-in page unless the visitor is signed in (when sign-in is on)."""
    if not sign_in_configured():
        return
    if not st.user.is_logged_in:
        # The only registered page: without st.navigation Streamlit would list app/pages/ by itself.
        st.navigation([st.Page(_sign_in_page, title="Sign in", url_path="sign-in")], position="hidden").run()
        st.stop()
    label = user_label()
    with st.sidebar:
        st.text(f"Signed in as {label}")  # text, not Markdown: a claim is user-controlled
        st.button("Sign out", on_click=st.logout)


def session_actor() -> str | None:
    """The actor of the session this thread serves; None outside a session (the engine's fallback: a job
    thread names its actor itself, the one who submitted it)."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return None
    if not sign_in_configured():
        return ANONYMOUS
    return user_label() if st.user.is_logged_in else None


use_actor_source(session_actor)
