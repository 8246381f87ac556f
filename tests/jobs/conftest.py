"""A fresh PostgreSQL database per test for the celery backend's tests (their Redis: ``redis_server`` of
tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A new, empty database of the session's PostgreSQL cluster for this test (same socket), dropped after."""
    import psycopg
    import sqlalchemy as sa

    cluster = sa.make_url(postgres_url)
    name = f"t_{uuid.uuid4().hex}"
    conninfo = f"host={cluster.query['host']} user={cluster.username} dbname={cluster.database}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield cluster.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

