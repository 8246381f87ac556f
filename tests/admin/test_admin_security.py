"""The panel's guards: sign-in on every route, CSRF on every POST, ids never paths, throttled
sign-ins, safe redirects, the secret key, cookie flags and headers."""

from __future__ import annotations

import os
import stat

import pytest
from werkzeug.routing import AnyConverter, IntegerConverter

from anon_plugin.admin import PUBLIC, create_app
from anon_plugin.admin.security import SECRET_KEY_FILE, Throttle, safe_next, secret_key
from anon_plugin.config import load_settings
from anon_plugin.errors import SettingsError


def _url(rule) -> str:
    """A URL for the rule with made-up values of the right kind."""
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        if isinstance(converter, IntegerConverter):
            values[name] = 1
        elif isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0]
        else:
            values[name] = "x"
    return rule.build(values)[1]


def _rules(app, method: str):
    return [r for r in app.url_map.iter_rules() if method in r.methods]


def test_only_sign_in_liveness_and_the_stylesheet_are_public(app):
    assert PUBLIC == {"auth.sign_in", "health.liveness", "static"}
    endpoints = {r.endpoint for r in app.url_map.iter_rules()}
    assert PUBLIC <= endpoints


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_route_sends_strangers_to_sign_in(app, client, method):
    rules = [r for r in _rules(app, method) if r.endpoint not in PUBLIC]
    assert len(rules) >= (15 if method == "GET" else 6), [r.rule for r in rules]
    for rule in rules:
        url = _url(rule)
        response = client.open(url, method=method)
        assert response.status_code == 302, f"{method} {url}: {response.status_code}"
        assert response.headers["Location"].startswith("/sign-in"), f"{method} {url}"
        assert "admin" not in response.text and "family" not in response.text


def test_a_stranger_is_sent_back_where_they_were_going(client, auth):
    response = client.get("/jobs?x=1")
    assert response.headers["Location"] == "/sign-in?next=/jobs?x%3D1"
    assert auth.sign_in(next="/jobs%3Fx%3D1").headers["Location"] == "/jobs?x=1"


def test_health_answers_ok_to_anyone_and_says_nothing_more(client, published):
    for url in ("/health", "/healthz"):
        response = client.get(url)
        assert response.status_code == 200 and response.text == "ok\n"
        assert response.mimetype == "text/plain"
        assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("method", ["POST"])
def test_every_post_without_a_csrf_token_is_refused(app, client, signed_in, method):
    for rule in _rules(app, method):
        url = _url(rule)
        response = client.post(url, data={"username": "admin", "password": signed_in.password})
        assert response.status_code == 400, f"POST {url}: {response.status_code}"
        assert "CSRF" in response.text


def test_a_token_from_another_session_is_refused(app, signed_in):
    other = app.test_client()
    foreign = other.get("/sign-in").text
    response = signed_in.client.post("/albums/1/share", data={"csrf_token": signed_in.token_of(foreign)})
    assert response.status_code == 400


TRAVERSALS = [
    "/provenance/photo/../../etc/passwd",
    "/provenance/photo/..%2F..%2Fetc%2Fpasswd",
    "/provenance/photo/%2e%2e/%2e%2e/etc/passwd",
    "/provenance/photo/%252e%252e%252fetc%252fpasswd",
    "/provenance/photo/1/../../../etc/passwd",
    "/provenance/output/..%2f..%2fdata%2fsecret_key",
    "/provenance/photo/-1",
    "/provenance/photo/1.5",
    "/provenance/photo/0x1",
    "/static/../data/secret_key",
    "/static/..%2f..%2fdata%2fsecret_key",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/albums/1/preview.png?photo=../../etc/passwd&method=blur&strength=large&threshold=none&recognizer=sface",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_paths_in_urls_are_never_files(signed_in, published, url):
    response = signed_in.client.get(url)
    assert response.status_code == 404, f"{url}: {response.status_code}"
    assert b"root:" not in response.data


@pytest.mark.parametrize("url", ["/albums/999", "/albums/999/policy", "/albums/999/unshare", "/provenance/999",
                                 "/provenance/999.json", "/provenance/999.csv", "/provenance/photo/999",
                                 "/provenance/output/999", "/provenance/output/999/faces"])
def test_unknown_ids_are_404(signed_in, published, url):
    assert signed_in.client.get(url).status_code == 404


@pytest.mark.parametrize("url", ["/albums/999/share", "/albums/999/unshare", "/albums/999/republish",
                                 "/jobs/999/retry"])
def test_posts_to_unknown_ids_are_404(signed_in, url):
    assert signed_in.post(url).status_code == 404


def test_a_photo_is_previewed_only_in_its_own_album(signed_in, store):
    from anon_plugin import albums
    from anon_plugin.library.ignore import PathFilter
    from anon_plugin.library.walk import scan_album
    from anon_plugin.store import queries

    with store() as session:
        club = albums.find(session, "club")
        family = albums.find(session, "family")
        albums.share(session, club, scan_album(__import__("pathlib").Path(club.root), "club", PathFilter()), by="t")
        photo = queries.photo_at(session, club.id, "c.jpg")
        ids = family.id, club.id, photo.id
    options = "method=blur&strength=large&threshold=none&recognizer=sface"
    assert signed_in.client.get(f"/albums/{ids[0]}/preview.png?photo={ids[2]}&{options}").status_code == 404
    assert signed_in.client.get(f"/albums/{ids[1]}/preview.png?photo=999&{options}").status_code == 404


def test_a_link_out_of_the_album_is_not_followed(signed_in, store, library, tmp_path):
    from anon_plugin import albums
    from anon_plugin.store.tables import Photo

    secret = tmp_path / "outside.jpg"
    secret.write_bytes((library / "family" / "a.jpg").read_bytes())
    (library / "family" / "link.jpg").symlink_to(secret)
    with store() as session:
        album = albums.find(session, "family")
        row = Photo(album_id=album.id, relative_path="link.jpg", size=1, mtime=0.0)
        session.add(row)
        session.flush()
        photo_id, album_id = row.id, album.id
    assert signed_in.client.get(f"/provenance/photo/{photo_id}").status_code == 404
    options = "method=blur&strength=large&threshold=none&recognizer=sface"
    assert signed_in.client.get(f"/albums/{album_id}/preview.png?photo={photo_id}&{options}").status_code == 404


def test_failed_sign_ins_are_throttled_per_user(auth):
    for i in range(5):
        response = auth.sign_in(password="wrong", address=f"10.0.0.{i}")
        assert response.status_code == 200 and "Wrong user name or password" in response.text
    refused = auth.sign_in(address="10.0.0.99")  # the right password, from yet another address
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text and "try again in 15 minutes" in refused.text
    assert int(refused.headers["Retry-After"]) > 800
    assert auth.client.get("/albums").status_code == 302  # refused means not signed in


def test_failed_sign_ins_are_throttled_per_address(auth):
    for i in range(5):
        assert auth.sign_in(name=f"nobody{i}", password="wrong", address="10.9.9.9").status_code == 200
    assert auth.sign_in(address="10.9.9.9").status_code == 429
    assert auth.sign_in(address="10.9.9.10").status_code == 302  # another address, the right password


def test_the_throttle_forgets_after_its_window_and_on_success():
    now = [1000.0]
    throttle = Throttle(limit=5, window=900, clock=lambda: now[0])
    for _ in range(5):
        throttle.failed("admin", "1.2.3.4")
    assert throttle.wait("admin", "5.6.7.8") == 900 and throttle.wait("other", "1.2.3.4") == 900
    now[0] += 899
    assert throttle.wait("admin", "5.6.7.8") == 1
    now[0] += 1
    assert throttle.wait("admin", "5.6.7.8") == 0
    for _ in range(4):
        throttle.failed("admin", "1.2.3.4")
    throttle.succeeded("admin", "1.2.3.4")
    throttle.failed("admin", "1.2.3.4")
    assert throttle.wait("admin", "1.2.3.4") == 0


@pytest.mark.parametrize("target", ["https://elsewhere.example/", "//elsewhere.example/", "/\\elsewhere.example",
                                    "http:/elsewhere.example", "javascript:alert(1)", "/\r\nLocation: //x",
                                    " //elsewhere.example"])
def test_next_never_leads_off_the_site(auth, target):
    from urllib.parse import quote

    response = auth.sign_in(next=quote(target, safe=""))
    assert response.status_code == 302
    assert response.headers["Location"] == "/albums", target


def test_safe_next():
    assert safe_next("/provenance/3?x=1", "/albums") == "/provenance/3?x=1"
    for bad in ("https://a.example", "//a.example", "/\\a.example", "/a\nb", "", None, "albums", "/a\\b"):
        assert safe_next(bad, "/albums") == "/albums", bad


def test_the_secret_key_is_made_private_once_and_reused(settings, tmp_path):
    path = settings.data_dir / SECRET_KEY_FILE
    assert not path.exists()
    first = create_app(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text()) == 64
    second = create_app(settings)
    assert first.secret_key == second.secret_key == path.read_bytes()
    assert first.secret_key not in (b"", None, "dev", "secret")


def test_a_secret_key_others_can_read_is_refused(settings):
    secret_key(settings.data_dir)
    path = settings.data_dir / SECRET_KEY_FILE
    os.chmod(path, 0o644)
    with pytest.raises(SettingsError, match="readable by others"):
        create_app(settings)
    path.write_text("")
    os.chmod(path, 0o600)
    with pytest.raises(SettingsError, match="too short"):
        secret_key(settings.data_dir)


def test_cookies_are_httponly_lax_and_secure_only_behind_tls(auth, environ):
    cookie = auth.sign_in().headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = load_settings(None, environ=environ(ANON_ADMIN_SECURE_COOKIES="true"))
    app = create_app(secure)
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_pages_carry_protective_headers(signed_in):
    response = signed_in.client.get("/albums")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none': no script at all
    assert response.headers["Cache-Control"] == "no-store"


def test_signing_out_ends_the_session(signed_in):
    response = signed_in.post("/sign-out")
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in"
    assert signed_in.client.get("/albums").status_code == 302


def test_a_removed_user_is_signed_out_at_the_next_request(signed_in, runner):
    assert signed_in.client.get("/albums").status_code == 200
    assert runner("users", "remove", "admin").exit_code == 0
    assert signed_in.client.get("/albums").status_code == 302


def test_a_session_cookie_replayed_from_another_address_is_dropped(app, signed_in):
    cookie = signed_in.client.get_cookie("anon_plugin_session")
    thief = app.test_client()
    thief.set_cookie("anon_plugin_session", cookie.value)
    assert thief.get("/albums", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 302
