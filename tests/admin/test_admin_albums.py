"""Albums: the list, share with its progress page, unshare confirmed on its own page, the policy
editor (per-field messages, new versions, republish) and its live preview on a real photo."""

from __future__ import annotations

import io
import re
from html import unescape

import sqlalchemy as sa
from PIL import Image

from anon_plugin import albums, policies
from anon_plugin.admin.forms import EDITABLE, READ_ONLY, PolicyForm
from anon_plugin.store import queries
from anon_plugin.store.tables import Album, AuditEntry, Job, PolicyVersion, utcnow


def _album_id(store, name: str) -> int:
    with store() as session:
        return albums.find(session, name).id


def _audit(store) -> list[tuple[str | None, str, str]]:
    with store() as session:
        entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))
        return [(e.user_name, e.action, e.target) for e in entries]


def _row(html: str, album: str) -> str:
    return re.search(rf'<tr data-album="{album}">(.*?)</tr>', html, re.S).group(1)


def test_the_list_shows_every_album_with_its_counts(signed_in, published):
    html = signed_in.client.get("/albums").text
    family, club = _row(html, "family"), _row(html, "club")
    cells = re.findall(r'<td class="n[^"]*">(\d+)</td>', family)
    assert cells == ["1", "1", "0", "0", "0"]  # photos, published, failed, held, pending
    assert "<td>yes</td>" in family and "v1" in family and "unshare" in family
    assert "<td>no</td>" in club and "Share" in club


def test_sharing_queues_the_album_and_shows_its_progress(signed_in, store):
    family = _album_id(store, "family")
    response = signed_in.post(f"/albums/{family}/share")
    assert response.status_code == 302 and response.headers["Location"] == f"/albums/{family}"
    page = signed_in.client.get(response.headers["Location"]).text
    assert '<meta http-equiv="refresh"' in page
    assert re.search(r'<dd id="queued">2</dd>', page) and re.search(r'<dd id="published">0</dd>', page)
    assert "2 photo(s) queued" in page
    with store() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.state == "queued")) == 2
    assert ("admin", "share", "family") in _audit(store)


def test_sharing_a_shared_album_again_is_a_message_not_a_second_share(signed_in, store):
    family = _album_id(store, "family")
    signed_in.post(f"/albums/{family}/share")
    again = signed_in.post(f"/albums/{family}/share", follow_redirects=True)
    assert again.status_code == 200 and "family is shared already." in again.text
    assert _audit(store).count(("admin", "share", "family")) == 1


def test_the_album_page_lists_the_files_it_does_not_publish_with_the_reason(signed_in, store, library):
    for name in ("clip.mp4", "trip/film.mov", "notes.txt", ".DS_Store", "@eaDir/a.jpg/SYNOFILE_THUMB_M.jpg"):
        (library / "family" / name).parent.mkdir(parents=True, exist_ok=True)
        (library / "family" / name).write_bytes(b"not published")
    family = _album_id(store, "family")
    assert 'id="not-published"' not in signed_in.client.get(f"/albums/{family}").text  # not shared: not walked
    page = signed_in.post(f"/albums/{family}/share", follow_redirects=True).text
    assert "2 photo(s) queued" in page
    section = re.search(r'<section class="card" id="not-published">(.*?)</section>', page, re.S).group(1)
    assert "Not published (3)" in section
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", section)
    video = "video: videos are not anonymized yet"
    assert rows == [("clip.mp4", video), ("notes.txt", "not a photo (.txt)"), ("trip/film.mov", video)]


def test_unsharing_asks_first_and_says_how_many_copies_go(signed_in, published):
    page = signed_in.client.get(f"/albums/{published.album_id}/unshare").text
    assert "1 public copy will be removed" in page
    assert published.public_path.is_file()  # asking removed nothing
    response = signed_in.post(f"/albums/{published.album_id}/unshare", page=f"/albums/{published.album_id}/unshare",
                              follow_redirects=True)
    assert response.status_code == 200
    assert "1 public copy removed" in response.text
    assert not published.public_path.exists()


def test_unshare_is_audited_with_the_count(signed_in, published, store):
    signed_in.post(f"/albums/{published.album_id}/unshare")
    with store() as session:
        entry = session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "unshare"))
    assert (entry.user_name, entry.target, entry.detail) == ("admin", "family", {"copies_removed": 1})


def test_the_policy_form_has_every_policy_field_but_the_command(app):
    assert set(EDITABLE) | set(READ_ONLY) == set(policies.FIELDS)
    with app.test_request_context():
        fields = set(PolicyForm(meta={"csrf": False})._fields)
    assert set(EDITABLE) <= fields and not set(READ_ONLY) & fields


def _form(html: str) -> dict[str, str]:
    """The policy form's values as the page shows them (what a browser would send back)."""
    inputs = re.findall(r'<input [^>]*?name="(\w+)"[^>]*?value="([^"]*)"', html)
    values = {name: unescape(value) for name, value in inputs}
    for name, body in re.findall(r'<select [^>]*?name="(\w+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option selected value="([^"]*)"', body) or re.search(r'<option value="([^"]*)"', body)
        if chosen:
            values[name] = unescape(chosen.group(1))
    values.pop("preview", None), values.pop("save", None)
    for box in re.findall(r'<input [^>]*?name="(\w+)"[^>]*?type="checkbox"', html):  # sent only when checked
        values.pop(box, None)
        if re.search(rf'<input checked[^>]*name="{box}"', html):
            values[box] = "y"
    return values


def test_an_album_never_shared_shows_the_default_without_saving_it(signed_in, store):
    club = _album_id(store, "club")
    page = signed_in.client.get(f"/albums/{club}/policy").text
    assert "the default (not saved yet)" in page
    form = _form(page)
    assert form["method"] == "generate" and form["strength"] == "medium" and form["enabled"] == "y"
    with store() as session:
        assert queries.latest_policy_version(session, club) is None


def test_bad_values_are_named_field_by_field(signed_in, store):
    family = _album_id(store, "family")
    form = _form(signed_in.client.get(f"/albums/{family}/policy").text)
    form.update(threshold="1.5", jpeg_quality="500", method="paint", save="Save")
    response = signed_in.client.post(f"/albums/{family}/policy", data=form)
    assert response.status_code == 400
    errors = dict(re.findall(r'id="error-(\w+)">([^<]*)<', response.text))
    assert set(errors) == {"threshold", "jpeg_quality", "method"}
    assert unescape(errors["jpeg_quality"]) == "jpeg_quality must be an integer from 1 to 95, got '500'"
    assert "from 0 to 1" in errors["threshold"] and "one of blur" in errors["method"]
    with store() as session:
        assert queries.latest_policy_version(session, family) is None  # nothing saved


def test_saving_makes_a_new_audited_version_and_offers_to_republish(signed_in, published, store):
    url = f"/albums/{published.album_id}/policy"
    form = _form(signed_in.client.get(url).text)
    form.update(strength="large", metadata="strip-all", save="Save")
    response = signed_in.client.post(url, data=form)
    assert response.status_code == 302 and response.headers["Location"] == f"{url}?saved=2"
    page = signed_in.client.get(response.headers["Location"]).text
    assert "Saved as policy version 2" in page and "Republish the album now" in page
    with store() as session:
        versions = queries.policy_versions(session, published.album_id)
        change = session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "policy change",
                                                            AuditEntry.user_name == "admin"))
    assert [v.version for v in versions] == [1, 2]
    assert versions[1].policy["strength"] == "large" and versions[1].policy["metadata"] == "strip-all"
    assert versions[1].created_by == "admin" and change.user_name == "admin" and change.detail["version"] == 2
    republished = signed_in.post(f"/albums/{published.album_id}/republish", follow_redirects=True)
    assert "1 photo(s) queued to be published again" in republished.text
    assert ("admin", "republish", "family") in _audit(store)


def test_republishing_an_album_not_shared_is_a_message_not_a_crash(signed_in, store):
    club = _album_id(store, "club")
    response = signed_in.post(f"/albums/{club}/republish", follow_redirects=True)
    assert response.status_code == 200 and "is not shared; share it first" in unescape(response.text)


def test_sharing_an_album_whose_name_another_root_shares_is_a_message_not_a_shared_album(signed_in, store, tmp_path):
    with store() as session:  # family in a second library root (its share unmounted now), shared
        session.add(Album(root=str(tmp_path / "nas"), name="family", shared=True, removed_at=utcnow()))
    family = _album_id(store, "family")
    response = signed_in.post(f"/albums/{family}/share", follow_redirects=True)
    assert response.status_code == 200
    assert f"{tmp_path / 'nas'}/family is shared and publishes to the same public folder" in unescape(response.text)
    with store() as session:
        assert session.get(Album, family).shared is False


def test_the_command_cannot_be_set_from_the_panel(signed_in, published, store):
    with store() as session:
        policies.save(session, published.album_id,
                      policies.DEFAULT.with_changes(after_publish="touch /tmp/rescan"), by="cli")
    url = f"/albums/{published.album_id}/policy"
    page = signed_in.client.get(url).text
    assert "touch /tmp/rescan" in page and 'name="after_publish"' not in page
    form = {**_form(page), "after_publish": "rm -rf /", "save": "Save"}
    assert signed_in.client.post(url, data=form).status_code == 302
    with store() as session:
        assert queries.latest_policy_version(session, published.album_id).policy["after_publish"] == "touch /tmp/rescan"


def test_the_preview_renders_the_edited_policy_on_a_photo_of_the_album(signed_in, published, store):
    url = f"/albums/{published.album_id}/policy"
    form = _form(signed_in.client.get(url).text)
    form.update(method="blur", strength="large", preview="Preview")
    page = signed_in.client.post(url, data=form)
    assert page.status_code == 200
    src = unescape(re.search(r'<img id="preview-image" src="([^"]+)"', page.text).group(1))
    assert f"photo={published.photo_id}" in src and "strength=large" in src and "method=blur" in src
    picture = signed_in.client.get(src)
    assert picture.status_code == 200 and picture.mimetype == "image/png"
    image = Image.open(io.BytesIO(picture.data))
    assert image.format == "PNG" and image.width == 1024 and image.height > 600
    with store() as session:  # a preview saves nothing
        assert len(queries.policy_versions(session, published.album_id)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(PolicyVersion)) == 1


def test_a_preview_with_bad_options_is_400_with_the_reason(signed_in, published):
    url = f"/albums/{published.album_id}/preview.png?photo={published.photo_id}"
    response = signed_in.client.get(url + "&method=paint&strength=large&threshold=none&recognizer=sface")
    assert response.status_code == 400 and "method must be one of" in response.text
    assert signed_in.client.get(url + "&method=blur&strength=large&threshold=7&recognizer=sface").status_code == 400


def test_saving_an_unchanged_policy_makes_no_version(signed_in, published, store):
    url = f"/albums/{published.album_id}/policy"
    form = {**_form(signed_in.client.get(url).text), "save": "Save"}
    response = signed_in.client.post(url, data=form, follow_redirects=True)
    assert "Nothing changed: the policy stays at version 1" in response.text
    with store() as session:
        assert len(queries.policy_versions(session, published.album_id)) == 1
