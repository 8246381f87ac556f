"""The Alembic revisions against the tables: real SQLite files (and PostgreSQL when installed), no mocks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner

from anon_plugin.cli import main
from anon_plugin.errors import StoreError
from anon_plugin.store import migrate
from anon_plugin.store.db import engine_for, session_scope
from anon_plugin.store.tables import Album, Base, Face, Job, Output, Photo, PolicyVersion

CORE = ("albums", "policy_versions", "photos", "jobs", "outputs", "faces")
ADMIN = ("users", "audit_log")
LATER = ("workers",)  # added after 0002: 0010


def _differences(url: str) -> list:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = engine_for(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _columns(url: str, names: tuple[str, ...]) -> dict[str, set[str]]:
    engine = engine_for(url)
    try:
        return {name: {c["name"] for c in sa.inspect(engine).get_columns(name)} for name in names}
    finally:
        engine.dispose()


def _all_rows(url: str, names: tuple[str, ...], columns: dict[str, set[str]] | None = None) -> dict[str, list[tuple]]:
    """Every row, in id order, of the columns the database has now (or of ``columns``, e.g. an older revision's)."""
    columns = columns or _columns(url, names)
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return {name: connection.execute(
                sa.select(*[c for c in Base.metadata.tables[name].columns if c.name in columns[name]])
                .order_by(sa.text("id"))).all() for name in names}
    finally:
        engine.dispose()


def test_upgrade_head_on_an_empty_database_equals_the_tables(sqlite_url):
    assert migrate.current(sqlite_url).revision is None
    state = migrate.upgrade(sqlite_url)
    assert state.at_head and state.revision == migrate.head() == "0010"
    assert _tables(sqlite_url) == {*CORE, *ADMIN, *LATER, "alembic_version"}
    assert _differences(sqlite_url) == []


def test_the_comparison_sees_a_missing_revision(sqlite_url):
    """Guards the test above: at 0001 the comparison must report the tables added since as missing."""
    migrate.upgrade(sqlite_url, "0001")
    added = {diff[1].name for diff in _differences(sqlite_url) if diff[0] == "add_table"}
    assert added == {*ADMIN, *LATER}


def test_downgrade_base_leaves_no_tables(sqlite_url):
    migrate.upgrade(sqlite_url)
    state = migrate.downgrade(sqlite_url, "base")
    assert state.revision is None and not state.at_head
    assert _tables(sqlite_url) == {"alembic_version"}
    assert migrate.upgrade(sqlite_url).at_head  # and up again


def _without(model: type[Base], *names: str) -> sa.TableClause:
    """The model's table without columns a later revision added, to write rows at an older one."""
    table = Base.metadata.tables[model.__tablename__]
    return sa.table(table.name, *(sa.column(c.name, c.type) for c in table.columns if c.name not in names))


def _fill_core(url: str) -> None:
    when = dt.datetime(2026, 5, 17, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    engine = engine_for(url)
    try:
        with session_scope(engine) as session:
            albums_0001 = _without(Album, "source", "external_id", "external_version",  # added by 0007
                                   "not_published",
                                   "mirror_album_id", "mirror_link_id")  # added by 0008 and 0009
            album_id = session.execute(sa.insert(albums_0001).values(
                root="/srv/photos", name="football", shared=True, created_at=when)
                .returning(albums_0001.c.id)).scalar_one()
            policy = PolicyVersion(album_id=album_id, version=1, policy={"strength": "large", "method": "inpaint"},
                                   created_by="anna", created_at=when)
            session.add(policy)
            photos_0001 = _without(Photo, "checksum")  # added by 0007
            photo_id = session.execute(sa.insert(photos_0001).values(
                album_id=album_id, relative_path="2026/match.jpg", sha256="a" * 64, size=3_500_000_000,
                mtime=1747467000.25, state="published", first_seen=when, updated_at=when)
                .returning(photos_0001.c.id)).scalar_one()
            session.flush()
            jobs_0001 = Job.__table__.to_metadata(sa.MetaData())  # with the kind column 0006 dropped
            jobs_0001.append_column(sa.Column("kind", sa.String(16)))
            session.execute(sa.insert(jobs_0001).values(photo_id=photo_id, kind="publish", state="done", attempts=1,
                                                         created_at=when, finished_at=when))
            output = Output(photo_id=photo_id, source_sha256="a" * 64, public_path="/srv/public/football/match.jpg",
                            public_sha256="b" * 64, policy_version_id=policy.id, engine_version="0.2.0",
                            model_sha256s={"yunet": "c" * 64}, device="cpu", seconds=1.5,
                            removed_tags=["GPSInfo"], notes=["16-bit PNG written as 8-bit"], status="published",
                            created_at=when)
            session.add(output)
            session.flush()
            session.add(Face(output_id=output.id, index=0, box=[1.0, 2.0, 30.5, 40.0], score=0.98, threshold=0.2,
                             mask_area=0.78, method="inpaint", seed=0, similarity={"sface": 0.12}, covered=False))
    finally:
        engine.dispose()


def test_rows_written_at_0001_survive_the_upgrade_to_head(sqlite_url):
    migrate.upgrade(sqlite_url, "0001")
    _fill_core(sqlite_url)
    columns = _columns(sqlite_url, CORE)
    before = _all_rows(sqlite_url, CORE)
    assert all(len(rows) == 1 for rows in before.values())
    migrate.upgrade(sqlite_url)
    assert _all_rows(sqlite_url, CORE, columns) == before
    assert before["albums"][0].created_at == dt.datetime(2026, 5, 17, 7, 30, tzinfo=dt.UTC)
    faces = _all_rows(sqlite_url, ("faces",))["faces"]
    assert [face.steps for face in faces] == [None]  # added by 0004
    assert [face.quality for face in faces] == [None]  # added by 0005
    assert "kind" not in _columns(sqlite_url, ("jobs",))["jobs"]  # dropped by 0006
    albums = _all_rows(sqlite_url, ("albums",))["albums"]
    assert [(a.source, a.external_id, a.external_version) for a in albums] == [("folder", None, None)]  # 0007
    assert [p.checksum for p in _all_rows(sqlite_url, ("photos",))["photos"]] == [None]  # added by 0007
    assert [a.not_published for a in albums] == [None]  # added by 0008
    assert [(a.mirror_album_id, a.mirror_link_id) for a in albums] == [(None, None)]  # added by 0009


def test_an_immich_album_and_its_photo_survive_a_downgrade_to_0006(sqlite_url):
    migrate.upgrade(sqlite_url)
    engine = engine_for(sqlite_url)
    try:
        with session_scope(engine) as session:
            album = Album(source="immich", external_id="a1", external_version="1", root="http://immich/albums/a1",
                          name="Holidays")
            session.add(album)
            session.flush()
            session.add(Photo(album_id=album.id, relative_path="asset-1", checksum="c" * 28, size=None, mtime=None))
    finally:
        engine.dispose()
    assert migrate.downgrade(sqlite_url, "0006").revision == "0006"
    assert "source" not in _columns(sqlite_url, ("albums",))["albums"]
    engine = engine_for(sqlite_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT root, name FROM albums")).all() == [
                ("http://immich/albums/a1", "Holidays")]
            assert connection.execute(sa.text("SELECT relative_path, size, mtime FROM photos")).all() == [
                ("asset-1", 0, 0.0)]
    finally:
        engine.dispose()
    assert migrate.upgrade(sqlite_url).at_head  # and up again


def test_a_database_from_a_newer_version_is_refused(sqlite_url):
    migrate.upgrade(sqlite_url)
    engine = engine_for(sqlite_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    for attempt in (migrate.current, migrate.upgrade, migrate.require_head):
        with pytest.raises(StoreError, match="0099.*newer version"):
            attempt(sqlite_url)


def test_require_head_refuses_an_old_schema(sqlite_url):
    migrate.upgrade(sqlite_url, "0001")
    with pytest.raises(StoreError, match="run: anon-plugin db upgrade"):
        migrate.require_head(sqlite_url)
    migrate.upgrade(sqlite_url)
    assert migrate.require_head(sqlite_url).at_head


def test_an_unreachable_database_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot use the database"):
        migrate.upgrade(f"sqlite:///{tmp_path / 'missing' / 'anon_plugin.db'}")


def test_script_location_is_the_checkouts_migrations_folder():
    assert migrate.script_location() == Path(__file__).resolve().parents[2] / "migrations"
    assert {p.name for p in (migrate.script_location() / "versions").glob("0*.py")} == {
        "0001_publishing_core.py", "0002_admin.py", "0003_photo_hash_later.py", "0004_face_steps.py",
        "0005_face_quality.py", "0006_jobs_publish_only.py", "0007_immich_albums.py",
        "0008_immich_not_published.py", "0009_immich_mirror.py", "0010_workers.py"}


def test_db_command_upgrades_current_and_downgrades(tmp_path):
    runner = CliRunner()
    env = {"ANON_DATA_DIR": str(tmp_path / "data"), "ANON_CONFIG": None}
    result = runner.invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    database = tmp_path / "data" / "anon_plugin.db"
    assert database.is_file()
    assert migrate.current(f"sqlite:///{database}").at_head
    assert "at 0010 (head)" in result.stderr
    result = runner.invoke(main, ["db", "current"], env=env)
    assert (result.exit_code, result.stdout) == (0, "0010 (head)\n")
    result = runner.invoke(main, ["db", "downgrade", "0001"], env=env)
    assert result.exit_code == 0 and _tables(f"sqlite:///{database}") == {*CORE, "alembic_version"}


def test_db_command_error_is_one_line_and_exit_1(tmp_path):
    env = {"ANON_DATA_DIR": str(tmp_path / "data"), "ANON_CONFIG": None}
    result = CliRunner().invoke(main, ["db", "upgrade", "0099"], env=env)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("anon-plugin: ")
    assert "0099" in result.stderr


def test_postgresql_upgrade_keeps_rows_compares_equal_and_downgrades(postgres_url):
    migrate.upgrade(postgres_url, "0001")
    _fill_core(postgres_url)
    columns = _columns(postgres_url, CORE)
    before = _all_rows(postgres_url, CORE)
    assert migrate.upgrade(postgres_url).at_head
    assert _all_rows(postgres_url, CORE, columns) == before
    assert _differences(postgres_url) == []
    assert migrate.downgrade(postgres_url, "base").revision is None
    assert _tables(postgres_url) == {"alembic_version"}


def test_an_immich_albums_not_published_list_goes_with_a_downgrade_to_0007(sqlite_url):
    migrate.upgrade(sqlite_url)
    engine = engine_for(sqlite_url)
    try:
        with session_scope(engine) as session:
            session.add(Album(source="immich", external_id="a1", root="http://immich/albums/a1", name="Match",
                              not_published=[{"path": "asset-2", "reason": "video: videos are not anonymized yet"}]))
    finally:
        engine.dispose()
    assert migrate.downgrade(sqlite_url, "0007").revision == "0007"
    assert "not_published" not in _columns(sqlite_url, ("albums",))["albums"]
    assert migrate.upgrade(sqlite_url).at_head  # and up again, the list empty until the next poll
    assert [a.not_published for a in _all_rows(sqlite_url, ("albums",))["albums"]] == [None]
