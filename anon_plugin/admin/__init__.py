"""The admin panel: a Flask app over the same store the daemon uses.

``create_app`` builds it (settings read once, blueprints imported inside the
factory); ``server.PanelServer`` serves it with waitress, alone
(``anon-plugin admin``) or beside the daemon (``anon-plugin serve``).

Every route needs a signed-in user except those in ``PUBLIC`` (the sign-in
page, the liveness answer and the stylesheet): the check runs before every
request, so a new route is guarded without anyone remembering to. Every POST
carries a CSRF token (Flask-WTF's ``CSRFProtect``).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from flask import Flask, redirect, render_template, request, session, url_for
from flask_login import current_user, login_fresh, logout_user
from werkzeug.wrappers import Response

from ..errors import AnonPluginError
from .security import Throttle, secret_key
from .state import EXTENSION, Panel

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ..config import Settings
    from ..daemon.service import Service

PUBLIC = frozenset({"auth.sign_in", "health.liveness", "static"})
SESSION_HOURS = 12
MAX_REQUEST_BYTES = 1024 * 1024
_CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")


def create_app(settings: Settings | None = None, engine: Engine | None = None,
               service: Service | None = None) -> Flask:
    """The panel for ``settings`` (read from ANON_* variables when None) on ``engine`` (by default the
    service's, else one for ``settings.database_url``). ``service``: the daemon when it runs in this
    process; the health page then reports on it. Raises StoreError when the database is not at the
    current schema, SettingsError when the secret key cannot be made or is not private."""
    from flask_wtf.csrf import CSRFError, CSRFProtect

    from ..config import load_settings
    from ..store import migrate
    from ..store.db import engine_for
    from .views import albums, audit, auth, health, jobs, provenance

    if settings is None:
        settings = service.settings if service is not None else load_settings()
    if engine is None:
        engine = service.engine if service is not None else engine_for(settings.database_url)
    migrate.require_head(settings.database_url)

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(settings.data_dir),
        SESSION_COOKIE_NAME="anon_plugin_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.admin.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.admin.secure_cookies,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=SESSION_HOURS),
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,  # a form left open over lunch can still be sent
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
    )
    app.extensions[EXTENSION] = Panel(settings, engine, service, Throttle())
    auth.init_login(app)
    app.before_request(_require_sign_in)  # before CSRFProtect's check: strangers are sent to sign in first
    CSRFProtect(app)
    for module in (auth, albums, jobs, provenance, audit, health):
        app.register_blueprint(module.bp)

    app.after_request(_headers)
    app.jinja_env.filters["when"] = _when
    app.register_error_handler(CSRFError, lambda exc: _error(400, f"Refused: {exc.description}"))
    app.register_error_handler(AnonPluginError, lambda exc: _error(400, str(exc)))
    for code in (400, 404, 405, 413, 422):
        app.register_error_handler(code, lambda exc: _error(exc.code, exc.description))
    return app


def _require_sign_in() -> Response | None:
    if request.endpoint in PUBLIC:
        return None
    if current_user.is_authenticated:
        if login_fresh():
            return None
        # Flask-Login marks a session stale when it comes from another address or browser than the
        # one that signed in (a stolen cookie, most likely): it must sign in again.
        logout_user()
        session.clear()
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.sign_in", next=target))


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"  # pages and originals stay out of shared caches
    return response


def _error(code: int, message: str) -> tuple[str, int]:
    return render_template("error.html", code=code, message=message), code


def _when(value: dt.datetime | str | None) -> str:
    """A time as the pages show it; records give ISO strings, rows give datetimes."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"
