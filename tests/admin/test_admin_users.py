"""``anon-plugin users``: the panel's users, made from the CLI (the first admin is made there)."""

from __future__ import annotations

import sqlalchemy as sa

from anon_plugin.store.tables import AuditEntry, User


def _hash(store, name: str) -> str | None:
    with store() as session:
        return session.scalar(sa.select(User.password_hash).where(User.name == name))


def test_add_asks_twice_and_stores_a_scrypt_hash(runner, store, auth):
    result = runner("users", "add", "bob", input="a long secret 1\na long secret 1\n")
    assert result.exit_code == 0, result.output
    stored = _hash(store, "bob")
    assert stored.startswith("scrypt:") and "a long secret 1" not in stored
    assert auth.sign_in("bob", "a long secret 1").status_code == 302


def test_add_asks_again_when_the_two_differ(runner, store):
    result = runner("users", "add", "bob", input="a long secret 1\nanother secret 2\nright one 123\nright one 123\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert _hash(store, "bob") is not None


def test_add_reads_the_password_from_stdin(runner, auth):
    result = runner("users", "add", "carol", "--password-stdin", input="from standard input\n")
    assert result.exit_code == 0, result.output
    assert auth.sign_in("carol", "from standard input").status_code == 302


def test_add_refuses_short_passwords_bad_names_and_duplicates(runner, store):
    short = runner("users", "add", "dave", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    bad = runner("users", "add", "bad name", "--password-stdin", input="long enough pw\n")
    assert bad.exit_code == 1 and "refused" in bad.output
    twice = runner("users", "add", "admin", "--password-stdin", input="long enough pw\n")
    assert twice.exit_code == 1 and "exists already" in twice.output
    assert _hash(store, "dave") is None


def test_list_and_remove(runner, signed_in):
    listed = runner("users", "list")
    assert listed.exit_code == 0 and "admin" in listed.output
    assert "never" not in listed.output.splitlines()[1]  # admin signed in: the last sign-in is there
    assert runner("users", "remove", "admin").exit_code == 0
    assert "admin" not in runner("users", "list").output
    gone = runner("users", "remove", "admin")
    assert gone.exit_code == 1 and "no user 'admin'" in gone.output


def test_every_sign_in_is_audited_with_its_outcome(auth, store):
    auth.sign_in(password="not the password", address="10.1.1.1")
    auth.sign_in(address="10.1.1.2")
    with store() as session:
        entries = session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))
        rows = [(e.user_name, e.action, e.target) for e in entries]
    assert rows == [("admin", "sign-in failed", "address 10.1.1.1"), ("admin", "sign-in", "address 10.1.1.2")]
