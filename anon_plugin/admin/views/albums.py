"""Albums: the list, sharing with its backfill progress, unsharing (confirmed on its own page),
the policy editor with its live preview, republishing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ... import albums, policies, provenance
from ...library.ignore import PathFilter
from ...errors import AlbumError, InputError
from ...policies import Policy
from ...store import queries
from .. import pictures
from ..forms import BOXES, EDITABLE, ActionForm, PolicyForm, form_values, preview_options, read_policy
from ..state import found, panel, reading, user_name, writing

bp = Blueprint("albums", __name__)
REFRESH_SECONDS = 3
PREVIEW_PHOTOS = 500  # choices offered in the editor
ALBUM_PHOTOS = 200  # photos listed on an album's page


@bp.route("/")
def home() -> Response:
    return redirect(url_for("albums.index"))


@bp.route("/albums")
def index() -> str:
    with reading() as s:
        rows = albums.summaries(s)
        ids = {(a.root, a.name): a.id for a in queries.listed_albums(s)}
    return render_template("albums/index.html", rows=rows, ids=ids, form=ActionForm())


@bp.route("/albums/<int:album_id>")
def album(album_id: int) -> str:
    """The album's counts and the files it does not publish; while a backfill runs, the page refreshes itself
    (no JavaScript needed). The folder is walked in the read transaction, which holds no lock."""
    with reading() as s:
        row = found(queries.listed_album(s, album_id))
        (summary,) = albums.with_not_published(albums.summaries(s, album_id),
                                               PathFilter(panel().settings.watch.ignore))
        jobs = queries.album_jobs(s, album_id)
        photos = provenance.photos_of(s, album_id, limit=ALBUM_PHOTOS)
        return render_template("albums/album.html", album=row, summary=summary, jobs=jobs, photos=photos,
                               shown=ALBUM_PHOTOS, working=row.shared and (jobs["queued"] + jobs["running"]) > 0,
                               refresh=REFRESH_SECONDS, form=ActionForm())


@bp.route("/albums/<int:album_id>/share", methods=["POST"])
def share(album_id: int) -> Response:
    with reading() as s:
        row = found(queries.present_album(s, album_id))
        name, shared = row.name, row.shared
    if shared:
        flash(f"{name} is shared already.", "info")
        return redirect(url_for("albums.album", album_id=album_id))
    try:
        queued = albums.share_album(panel().engine, album_id, PathFilter(panel().settings.watch.ignore),
                                     by=user_name())
        flash(f"{name} is shared: {queued} photo(s) queued for publishing.", "ok")
    except AlbumError as exc:
        flash(str(exc), "error")
    return redirect(url_for("albums.album", album_id=album_id))


@bp.route("/albums/<int:album_id>/unshare", methods=["GET", "POST"])
def unshare(album_id: int) -> Response | str:
    public_root = panel().settings.public_root
    if request.method == "GET":
        with reading() as s:
            row = found(queries.listed_album(s, album_id))
            if not row.shared:
                flash(f"{row.name} is not shared.", "info")
                return redirect(url_for("albums.album", album_id=album_id))
            return render_template("albums/unshare.html", album=row, copies=albums.copies(s, row), form=ActionForm())
    if public_root is None:
        raise AlbumError("public_root is not set, so there are no public copies to remove")
    with albums.immich_public(panel().settings.immich) as public, writing() as s:
        row = found(queries.listed_album(s, album_id))
        removed = albums.unshare(s, row, public_root, by=user_name(), immich=public)
        name = row.name
    flash(f"{name} is no longer shared: {removed} public cop{'y' if removed == 1 else 'ies'} removed.", "ok")
    return redirect(url_for("albums.index"))


@bp.route("/albums/<int:album_id>/republish", methods=["POST"])
def republish(album_id: int) -> Response:
    try:
        with writing() as s:
            row = found(queries.listed_album(s, album_id))
            count = albums.republish(s, row, by=user_name())
        flash(f"{count} photo(s) queued to be published again under the current policy.", "ok")
    except AlbumError as exc:
        flash(str(exc), "error")
    return redirect(url_for("albums.album", album_id=album_id))


def _saved_policy(s, album_id: int) -> tuple[int | None, Policy]:
    """The album's newest policy; an album never shared has none yet and shows the default (a read
    must not write version 1, as ``policies.current`` would)."""
    latest = queries.latest_policy_version(s, album_id)
    return (latest.version, Policy.from_mapping(latest.policy)) if latest else (None, policies.DEFAULT)


def _preview_url(album_id: int, photo_id: int, policy: Policy) -> str:
    options: dict[str, Any] = {k: ("none" if v is None else v) for k, v in policy.engine_options().items()}
    return url_for("albums.preview", album_id=album_id, photo=photo_id, **options)


@bp.route("/albums/<int:album_id>/policy", methods=["GET", "POST"])
def policy(album_id: int) -> Response | tuple[str, int]:
    with reading() as s:
        row = found(queries.listed_album(s, album_id))
        version, saved = _saved_policy(s, album_id)
        choices = [(p.id, p.relative_path) for p in provenance.photos_of(s, album_id, limit=PREVIEW_PHOTOS)]
        name, shared = row.name, row.shared
    form = PolicyForm() if request.method == "POST" else PolicyForm(data=form_values(saved))
    photo = request.form.get("photo", type=int) if request.method == "POST" else None
    photo = photo if photo is not None else (choices[0][0] if choices else None)
    errors: dict[str, str] = {}
    preview = None
    status = 200
    if form.is_submitted():  # its CSRF token was checked by CSRFProtect before this view ran
        edited, errors = read_policy(form, saved)
        if form.preview.data and photo not in dict(choices):
            errors["photo"] = "choose a photo of this album"
        if edited is None or errors:
            status = 400
        elif form.save.data and version is not None and edited == saved:
            flash(f"Nothing changed: the policy stays at version {version}.", "info")
            return redirect(url_for("albums.policy", album_id=album_id))
        elif form.save.data:
            with writing() as s:
                new_version, queued = albums.set_policy(s, found(queries.listed_album(s, album_id)), edited,
                                                        by=user_name())
            flash(f"Saved as policy version {new_version}." +
                  (f" {queued} photo(s) that waited while publishing was off are queued." if queued else "") +
                  (" Its public copies still show the old one until you republish." if shared else ""), "ok")
            return redirect(url_for("albums.policy", album_id=album_id, saved=new_version))
        elif photo is not None:  # a preview of a photo checked above to be one of the album's
            preview = _preview_url(album_id, photo, edited)
    return render_template("albums/policy.html", album_id=album_id, name=name, shared=shared, version=version,
                           saved=saved, form=form, fields=EDITABLE, boxes=BOXES, errors=errors, preview=preview,
                           photos=choices, photo=photo,
                           just_saved=request.args.get("saved", type=int), action=ActionForm()), status


@bp.route("/albums/<int:album_id>/preview.png")
def preview(album_id: int) -> Response:
    """The preview picture for a photo of this album (by id) under the engine options in the query."""
    with reading() as s:
        row = found(queries.listed_album(s, album_id))
        photo = found(queries.photo_in_album(s, album_id, request.args.get("photo", type=int) or 0))
        folder = Path(row.root) / row.name
        path = folder / photo.relative_path
    if not path.resolve().is_relative_to(folder.resolve()):  # a link out of the album is not followed
        abort(404)
    options, errors = preview_options(request.args)
    if errors:
        abort(400, "; ".join(errors.values()))
    try:
        data = pictures.preview_png(path, options, panel().device)
    except (InputError, FileNotFoundError) as exc:
        abort(422, f"cannot preview this photo: {exc}")
    return flask.Response(data, mimetype="image/png")

