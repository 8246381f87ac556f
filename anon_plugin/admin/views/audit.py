"""The audit log: who signed in (or failed to), shared, unshared, changed a policy, republished
or retried, and when; newest first, a page at a time."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from ...store import queries
from ..state import reading

bp = Blueprint("audit", __name__)
PAGE = 100


@bp.route("/audit")
def index() -> str:
    before = request.args.get("before", type=int)
    with reading() as s:
        entries = queries.audit_entries(s, PAGE + 1, before)
        return render_template("audit/index.html", entries=entries[:PAGE],
                               older=entries[PAGE - 1].id if len(entries) > PAGE else None)
