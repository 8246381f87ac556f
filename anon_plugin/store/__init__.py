"""The database: tables (SQLAlchemy 2.0), engines and sessions, Alembic migrations.

``tables`` says what is stored, ``db`` how to connect (SQLite pragmas,
BEGIN IMMEDIATE), ``migrate`` how the schema is created and upgraded.
"""
