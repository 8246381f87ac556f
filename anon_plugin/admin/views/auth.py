"""Signing in and out. Failed sign-ins are throttled per user name and per address, in memory
(``security.Throttle``); every attempt, refused or not, is in the audit log."""

from __future__ import annotations

import flask
from flask import Blueprint, Flask, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.wrappers import Response

from ...store import queries
from .. import accounts
from ..forms import SignInForm
from ..security import safe_next
from ..state import panel, reading, user_name, writing

bp = Blueprint("auth", __name__)


class PanelUser(UserMixin):
    """The signed-in user as Flask-Login holds it: an id and a name, never the hash."""

    def __init__(self, account: accounts.Account):
        self.id = account.id
        self.name = account.name


def _load(user_id: str) -> PanelUser | None:
    if not user_id.isdigit():
        return None
    with reading() as session_:
        account = accounts.get(session_, int(user_id))
    return PanelUser(account) if account is not None else None  # a removed user is signed out


def init_login(app: Flask) -> None:
    manager = LoginManager(app)
    manager.user_loader(_load)
    # A session used from another address or browser than the one that signed in is marked stale;
    # create_app's check then signs it out (Flask-Login's "strong" mode does not apply to the
    # permanent sessions used here, whose lifetime is enforced).
    manager.session_protection = "basic"


def _next() -> str:
    return safe_next(request.args.get("next"), url_for("albums.index"))


def _wait_text(seconds: int) -> str:
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _page(form: SignInForm, error: str | None = None, status: int = 200) -> tuple[str, int]:
    target = safe_next(request.args.get("next"), "")
    return render_template("auth/sign_in.html", form=form, error=error, next=target or None), status


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(_next())
    form = SignInForm()
    if not form.validate_on_submit():
        return _page(form)
    name, password = form.username.data.strip(), form.password.data
    address = request.remote_addr or "unknown"
    throttle = panel().throttle
    if wait := throttle.wait(name, address):
        with writing() as s:
            queries.audit(s, name, "sign-in refused", f"address {address}", {"reason": "too many failed sign-ins"})
        page, status = _page(form, f"Too many failed sign-ins for this user or from this address: "
                                   f"try again in {_wait_text(wait)}.", 429)
        return flask.Response(page, status, headers={"Retry-After": str(wait)})
    with writing() as s:
        account = accounts.authenticate(s, name, password)
        queries.audit(s, name, "sign-in" if account else "sign-in failed", f"address {address}")
    if account is None:
        throttle.failed(name, address)
        return _page(form, "Wrong user name or password.")
    throttle.succeeded(name, address)
    session.clear()  # nothing from before the sign-in survives it, the CSRF secret included
    login_user(PanelUser(account))
    session.permanent = True
    return redirect(_next())


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    with writing() as s:
        queries.audit(s, user_name(), "sign-out", f"address {request.remote_addr or 'unknown'}")
    logout_user()
    session.clear()
    return redirect(url_for("auth.sign_in"))
