"""Provenance in the panel: search by name, sha256 or date; the record with both pictures and its
faces; CSV and JSON exports; pictures by id only."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

from PIL import Image

from anon_plugin.store.tables import Output


def test_search_by_name_sha256_and_date(signed_in, published, store, record, library, tmp_path):
    with store() as session:
        record(session, "club", "c.jpg", tmp_path / "public", library / "club" / "c.jpg",
               created=dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC))

    def found(query: str) -> list[str]:
        html = signed_in.client.get(f"/provenance?{query}").text
        return re.findall(r'<a href="/provenance/\d+">([^<]+)</a>', html)

    assert found("name=A.JP") == ["a.jpg"]
    assert sorted(found("sha256=ABAB")) == ["a.jpg", "c.jpg"]  # the original's sha256, any case
    assert sorted(found("sha256=cdcdcd")) == ["a.jpg", "c.jpg"]  # the public copy's
    assert found("date=2024-06-01") == ["c.jpg"]
    assert found("date=2024-06-01&name=a.jpg") == []
    assert found("name=%25") == []  # LIKE's wildcards are plain characters here


def test_bad_search_fields_are_named(signed_in):
    response = signed_in.client.get("/provenance?sha256=xyz&date=yesterday")
    assert response.status_code == 400
    errors = dict(re.findall(r'id="error-(\w+)">([^<]*)<', response.text))
    assert errors == {"sha256": "4 to 64 hexadecimal digits", "date": "a date as YYYY-MM-DD"}


def test_the_record_shows_both_pictures_faces_tags_and_policy(signed_in, published):
    html = signed_in.client.get(f"/provenance/{published.photo_id}").text
    assert f'src="/provenance/output/{published.output_id}/faces"' in html
    assert f'src="/provenance/output/{published.output_id}"' in html
    assert "GPSInfo, BodySerialNumber" in html and "version 1: generate, medium" in html
    faces = re.search(r'<table class="faces">(.*?)</table>', html, re.S).group(1)
    assert "40.0, 30.0, 140.0, 150.0" in faces and "0.970" in faces and "50%" in faces


def test_pictures_are_served_by_id_as_jpegs(signed_in, published):
    for url in (f"/provenance/photo/{published.photo_id}", f"/provenance/output/{published.output_id}/faces",
                f"/provenance/output/{published.output_id}"):
        response = signed_in.client.get(url)
        assert response.status_code == 200 and response.mimetype == "image/jpeg", url
        image = Image.open(io.BytesIO(response.data))
        assert image.format == "JPEG" and min(image.size) > 50 and not image.getexif(), url
        assert response.headers["Cache-Control"] == "no-store"


def test_a_copy_no_longer_in_force_is_not_served(signed_in, published, store):
    with store() as session:
        session.get(Output, published.output_id).status = "superseded"
    assert signed_in.client.get(f"/provenance/output/{published.output_id}").status_code == 404
    assert signed_in.client.get(f"/provenance/output/{published.output_id}/faces").status_code == 200


def test_a_missing_file_is_404(signed_in, published):
    published.public_path.unlink()
    assert signed_in.client.get(f"/provenance/output/{published.output_id}").status_code == 404


def test_json_and_csv_exports_of_a_record(signed_in, published):
    data = signed_in.client.get(f"/provenance/{published.photo_id}.json")
    assert data.headers["Content-Disposition"] == f'attachment; filename="provenance-{published.photo_id}.json"'
    (record,) = json.loads(data.text)
    assert record["photo_id"] == published.photo_id and record["album"] == "family"
    assert record["outputs"][0]["removed_tags"] == ["GPSInfo", "BodySerialNumber"]
    assert record["outputs"][0]["faces"][0]["box"] == [40.0, 30.0, 140.0, 150.0]
    rows = list(csv.DictReader(io.StringIO(signed_in.client.get(f"/provenance/{published.photo_id}.csv").text)))
    assert len(rows) == 1
    assert rows[0]["removed_tags"] == "GPSInfo;BodySerialNumber" and rows[0]["policy_version"] == "1"
    assert rows[0]["covered"] == "False" and rows[0]["public_path"] == str(published.public_path)


def test_search_exports_and_spreadsheet_formulas_are_defused(signed_in, published, store, record, library, tmp_path):
    (library / "club" / "=HYPERLINK(1).jpg").write_bytes((library / "club" / "c.jpg").read_bytes())
    with store() as session:
        record(session, "club", "=HYPERLINK(1).jpg", tmp_path / "public", library / "club" / "c.jpg")
    text = signed_in.client.get("/provenance/export.csv?name=hyperlink").text
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["original"].endswith("=HYPERLINK(1).jpg")
    assert "'=HYPERLINK" not in row["original"]  # only a cell that starts with = is quoted
    everything = json.loads(signed_in.client.get("/provenance/export.json").text)
    assert {r["relative_path"] for r in everything} == {"a.jpg", "=HYPERLINK(1).jpg"}
    from anon_plugin.admin.export import _cell

    assert _cell("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0" and _cell("-1") == "'-1" and _cell(None) == ""
