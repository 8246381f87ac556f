"""Fixtures for the admin panel: a real SQLite store in tmp_path, a library of real photos (linked,
never copied into the repository), the app with CSRF on, its test client, the CLI, and sign-in helpers.

``auth.post`` takes its CSRF token from a page the way a browser does, so
every POST in these tests goes through the same check as a real one.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from anon_plugin import albums, policies
from anon_plugin.admin import accounts, create_app
from anon_plugin.admin.state import panel
from anon_plugin.config import Settings, load_settings
from anon_plugin.store import migrate
from anon_plugin.store.db import session_scope
from anon_plugin.store.tables import Face, Output, Photo, utcnow

PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')


def environ_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"ANON_DATA_DIR": str(tmp_path / "data"), "ANON_LIBRARY_ROOTS": str(tmp_path / "library"),
            "ANON_PUBLIC_ROOT": str(tmp_path / "public"), "ANON_WATCH_STABILITY_DELAY": "0.3",
            "ANON_INFERENCE_THREADS": "2", **extra}


@pytest.fixture
def library(tmp_path: Path, wild_photos: list[Path]) -> Path:
    """Two albums of real photos: family (a.jpg, trip/b.jpg) and club (c.jpg)."""
    root = tmp_path / "library"
    (root / "family" / "trip").mkdir(parents=True)
    (root / "club").mkdir()
    (tmp_path / "public").mkdir()
    shutil.copy(wild_photos[0], root / "family" / "a.jpg")
    shutil.copy(wild_photos[3], root / "family" / "trip" / "b.jpg")
    shutil.copy(wild_photos[5], root / "club" / "c.jpg")
    return root


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database at head with the user admin, made once and copied for each test (migrating and
    hashing a password for every test would cost half a second each)."""
    from anon_plugin.store.db import DATABASE_FILE, default_url, engine_for

    folder = tmp_path_factory.mktemp("migrated")
    migrate.upgrade(default_url(folder))
    engine = engine_for(default_url(folder))
    with session_scope(engine) as session:
        accounts.add(session, "admin", PASSWORD)
    engine.dispose()
    return folder / DATABASE_FILE


@pytest.fixture
def settings(tmp_path: Path, library: Path, migrated: Path) -> Settings:
    s = load_settings(None, environ=environ_for(tmp_path))
    shutil.copyfile(migrated, s.data_dir / migrated.name)  # the file alone: it was closed cleanly, WAL folded in
    return s


@pytest.fixture
def app(settings: Settings, library: Path) -> Iterator[Flask]:
    app = create_app(settings)
    with session_scope(panel_of(app).engine) as session:
        albums.sync(session, [(library, "family"), (library, "club")], share_new=False)
    yield app
    panel_of(app).engine.dispose()


def panel_of(app: Flask):
    with app.app_context():
        return panel()


@pytest.fixture
def store(app: Flask) -> Callable:
    """``with store() as session:`` a write session on the app's database."""
    return lambda: session_scope(panel_of(app).engine)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(tmp_path: Path, settings: Settings) -> Callable[..., Result]:
    """``runner("users", "add", "bob", input=...)``: the anon-plugin CLI on the test's settings."""
    from anon_plugin.cli import main

    def run(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, list(args), input=input, env=environ_for(tmp_path),
                                  catch_exceptions=False)

    return run


def token_of(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Auth:
    """Signs in and posts with a CSRF token, as a browser does. (Test modules reach conftest's
    helpers through fixtures: every conftest.py is the module "conftest" in turn.)"""

    client: FlaskClient
    password: str = PASSWORD
    token_of = staticmethod(token_of)

    def sign_in(self, name: str = "admin", password: str = PASSWORD, next: str | None = None,
                address: str = "127.0.0.1"):
        page = self.client.get("/sign-in", environ_base={"REMOTE_ADDR": address})
        url = "/sign-in" if next is None else f"/sign-in?next={next}"
        return self.client.post(url, data={"username": name, "password": password,
                                           "csrf_token": token_of(page.text)},
                                environ_base={"REMOTE_ADDR": address})

    def token(self, page: str = "/albums") -> str:
        return token_of(self.client.get(page).text)

    def post(self, url: str, data: dict | None = None, page: str = "/albums", **kwargs):
        return self.client.post(url, data={**(data or {}), "csrf_token": self.token(page)}, **kwargs)


@pytest.fixture
def environ(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """``environ(**extra)``: the test's ANON_* settings as variables."""
    return lambda **extra: environ_for(tmp_path, **extra)


@pytest.fixture
def record() -> Callable[..., "Published"]:
    """``record(session, album, relative, public_root, source, created=None)``: see ``publish_record``."""
    return publish_record


@pytest.fixture
def auth_factory() -> type[Auth]:
    """``auth_factory(client)``: sign-in helpers for another client (another thread, another browser)."""
    return Auth


@pytest.fixture
def auth(client: FlaskClient) -> Auth:
    return Auth(client)


@pytest.fixture
def signed_in(auth: Auth) -> Auth:
    response = auth.sign_in()
    assert response.status_code == 302, response.text
    return auth


@dataclass(frozen=True)
class Published:
    album_id: int
    photo_id: int
    output_id: int
    public_path: Path


def publish_record(session, album_name: str, relative: str, public_root: Path, source: Path,
                   created: dt.datetime | None = None, removed_tags=("GPSInfo", "BodySerialNumber")) -> Published:
    """A photo published the way the worker records it, written through the tables (no inference):
    a public file (a copy of ``source``), its output under the album's policy, one face."""
    album = albums.find(session, album_name)
    album.shared = True
    version, _ = policies.current(session, album.id)
    from anon_plugin.store import queries

    photo = queries.photo_at(session, album.id, relative)
    if photo is None:
        photo = Photo(album_id=album.id, relative_path=relative, size=source.stat().st_size, mtime=0.0)
        session.add(photo)
        session.flush()
    target = public_root / album_name / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    photo.sha256, photo.state = "ab" * 32, "published"
    output = Output(photo_id=photo.id, source_sha256="ab" * 32, public_path=str(target), public_sha256="cd" * 32,
                    policy_version_id=queries.policy_version_id(session, album.id, version), engine_version="test",
                    model_sha256s={}, device="cpu", seconds=0.5, removed_tags=list(removed_tags), notes=[],
                    status="published", created_at=created or utcnow())
    session.add(output)
    session.flush()
    session.add(Face(output_id=output.id, index=0, box=[40.0, 30.0, 140.0, 150.0], score=0.97, threshold=0.4,
                     mask_area=0.5, method="generate", seed=1, similarity=None, covered=False, error=None))
    return Published(album.id, photo.id, output.id, target)


@pytest.fixture
def published(store, library: Path, tmp_path: Path) -> Published:
    """family/a.jpg published (synthetic record, real files)."""
    with store() as session:
        return publish_record(session, "family", "a.jpg", tmp_path / "public", library / "family" / "a.jpg")
