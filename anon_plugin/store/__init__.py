"""The database: tables (SQLAlchemy 2.0), engines and sessions, queries, Alembic migrations.

``tables`` says what is stored, ``db`` how to connect (SQLite pragmas,
BEGIN IMMEDIATE), ``queries`` every question asked of it, ``migrate`` how
the schema is created and upgraded.
"""
