"""The admin panel's users, kept in the store: what ``anon-plugin users`` and the sign-in page call.

Passwords are stored as werkzeug scrypt hashes, never as given. Checking a
name that does not exist costs the same scrypt as a wrong password, so the
time a refusal takes does not tell which names exist.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ..errors import AnonPluginError
from ..store import queries
from ..store.tables import User, utcnow

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,149}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


class AccountError(AnonPluginError):
    """A user name or password is refused, or the user exists already or does not exist."""


@dataclass(frozen=True)
class Account:
    """A panel user as the panel and the CLI see it: never the hash."""

    id: int
    name: str
    created_at: dt.datetime
    last_login: dt.datetime | None


def _account(row: User) -> Account:
    return Account(row.id, row.name, row.created_at, row.last_login)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise AccountError(f"user name {name!r} refused: 1 to 150 letters, digits or . _ @ -, "
                           "starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password refused: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"password refused: at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def add(session: Session, name: str, password: str) -> Account:
    """A new user; AccountError when the name is taken or name or password are refused."""
    check_name(name)
    check_password(password)
    if queries.user_named(session, name) is not None:
        raise AccountError(f"user {name!r} exists already")
    return _account(queries.add_user(session, name, hash_password(password)))


def remove(session: Session, name: str) -> None:
    if not queries.remove_user(session, name):
        raise AccountError(f"no user {name!r}; `anon-plugin users list` shows them")


def listing(session: Session) -> list[Account]:
    return [_account(row) for row in queries.users(session)]


def get(session: Session, user_id: int) -> Account | None:
    row = queries.user_by_id(session, user_id)
    return _account(row) if row is not None else None


@functools.cache
def _decoy() -> str:
    return hash_password("a password that no user has")


def authenticate(session: Session, name: str, password: str) -> Account | None:
    """The user when ``password`` is theirs (their last sign-in is then noted), else None."""
    row = queries.user_named(session, name) if len(password) <= MAX_PASSWORD else None
    if row is None:
        check_password_hash(_decoy(), password[:MAX_PASSWORD])
        return None
    if not check_password_hash(row.password_hash, password):
        return None
    row.last_login = utcnow()
    return _account(row)
