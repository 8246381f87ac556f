"""Provenance: search by file name, sha256 or date; a record with the original and the public copy
side by side and every face; exports as CSV and JSON.

Pictures are served by record id only (a photo id, an output id); the file is the one the store
names, and it must lie inside its album folder or the public root. Unknown ids are 404.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import flask
from flask import Blueprint, abort, render_template, request
from werkzeug.wrappers import Response

from ... import provenance
from ...errors import InputError
from ...store import queries
from ...store.tables import Photo
from .. import export, pictures
from ..forms import SearchForm
from ..state import found, panel, reading

bp = Blueprint("provenance", __name__)
RESULTS = 100
_HEX = re.compile(r"[0-9a-f]{4,64}")


def _criteria(form: SearchForm) -> tuple[dict, dict[str, str]]:
    """The search's criteria from the form, and a message per field that was refused."""
    criteria, errors = {}, {}
    if name := (form.name.data or "").strip():
        criteria["name"] = name
    if sha := (form.sha256.data or "").strip().lower():
        if _HEX.fullmatch(sha):
            criteria["sha256"] = sha
        else:
            errors["sha256"] = "4 to 64 hexadecimal digits"
    if day := (form.date.data or "").strip():
        try:
            criteria["day"] = dt.date.fromisoformat(day)
        except ValueError:
            errors["date"] = "a date as YYYY-MM-DD"
    return criteria, errors


@bp.route("/provenance")
def search() -> tuple[str, int]:
    form = SearchForm(request.args)
    criteria, errors = _criteria(form)
    with reading() as s:
        results = [] if errors else queries.search_photos(s, limit=RESULTS, **criteria)
        return render_template("provenance/search.html", form=form, errors=errors, results=results,
                               limit=RESULTS, query=request.query_string.decode()), 400 if errors else 200


def _record(s, photo: Photo | None) -> dict:
    """The photo's provenance record (404 when there is no such photo)."""
    photo = found(photo)
    return {"photo_id": photo.id, **provenance.record(s, photo)}


@bp.route("/provenance/export.<any(csv, json):fmt>")
def export_search(fmt: str) -> Response:
    criteria, errors = _criteria(SearchForm(request.args))
    if errors:
        abort(400, "; ".join(f"{k}: {v}" for k, v in errors.items()))
    with reading() as s:
        records = [_record(s, photo) for photo, _ in queries.search_photos(s, limit=RESULTS * 10, **criteria)]
    return _download(records, fmt, "provenance")


@bp.route("/provenance/<int:photo_id>")
def record(photo_id: int) -> str:
    with reading() as s:
        data = _record(s, queries.photo_by_id(s, photo_id))
        latest = next(iter(data["outputs"]), None)
        return render_template("provenance/record.html", record=data, latest=latest)


@bp.route("/provenance/<int:photo_id>.<any(csv, json):fmt>")
def export_record(photo_id: int, fmt: str) -> Response:
    with reading() as s:
        data = _record(s, queries.photo_by_id(s, photo_id))
    return _download([data], fmt, f"provenance-{photo_id}")


def _download(records: list[dict], fmt: str, stem: str) -> Response:
    body, kind = (export.to_csv(records), "text/csv") if fmt == "csv" else (export.to_json(records), "application/json")
    return flask.Response(body, mimetype=kind, headers={"Content-Disposition": f'attachment; filename="{stem}.{fmt}"'})


def _original(s, photo_id: int) -> Path:
    """The original's file, from the store; 404 when it is unknown or would lie outside its album folder."""
    photo = found(queries.photo_by_id(s, photo_id))
    album = found(queries.album_by_id(s, photo.album_id))
    folder = Path(album.root) / album.name
    path = folder / photo.relative_path
    if not path.resolve().is_relative_to(folder.resolve()):
        abort(404)
    return path


def _jpeg(render, *args) -> Response:
    try:
        return flask.Response(render(*args), mimetype="image/jpeg")
    except (InputError, FileNotFoundError):
        abort(404, "the file is no longer there or cannot be read")


@bp.route("/provenance/photo/<int:photo_id>")
def original(photo_id: int) -> Response:
    with reading() as s:
        path = _original(s, photo_id)
    return _jpeg(pictures.photo_jpeg, path)


@bp.route("/provenance/output/<int:output_id>/faces")
def faces(output_id: int) -> Response:
    """The original with the boxes of the faces this output found, numbered as in the record."""
    with reading() as s:
        output = found(queries.output_by_id(s, output_id))
        path = _original(s, output.photo_id)
        boxes = [(f.box, f.covered) for f in queries.faces_of(s, output_id)]
    return _jpeg(pictures.faces_jpeg, path, boxes)


@bp.route("/provenance/output/<int:output_id>")
def public_copy(output_id: int) -> Response:
    """The public copy while it is the one in force (a superseded or removed output has none)."""
    public_root = panel().settings.public_root
    with reading() as s:
        output = found(queries.output_by_id(s, output_id))
        path, status = Path(output.public_path), output.status
    if status != "published" or public_root is None or not path.resolve().is_relative_to(public_root.resolve()):
        abort(404)
    return _jpeg(pictures.photo_jpeg, path)
