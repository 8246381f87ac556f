"""``anon-plugin policy show / set`` end to end: CliRunner on the real CLI, a real SQLite store, real folders."""

from __future__ import annotations

import json

import pytest
from cli_site import Site as BaseSite
from sqlalchemy.orm import Session

from anon_plugin import albums, policies
from anon_plugin.store import queries

Policy = policies.Policy

DEFAULT = {"enabled": True, "method": "generate", "strength": "medium", "threshold": None, "recognizer": "sface",
           "verify": True, "metadata": "strip-identifying", "on_face_failure": "cover", "output_format": "same",
           "jpeg_quality": 90, "after_publish": None, "after_publish_timeout": 60.0,
           "allow_download": False}
FIELDS = ("enabled, method, strength, threshold, recognizer, verify, metadata, on_face_failure, output_format, "
          "jpeg_quality, after_publish, after_publish_timeout, allow_download")


class Site(BaseSite):
    def versions(self, name: str = "family") -> tuple[tuple[int, Policy] | None, list[tuple[int, dict]]]:
        """policies.current and every stored version of the album, read from the store itself."""

        def read(session: Session) -> tuple[tuple[int, Policy] | None, list[tuple[int, dict]]]:
            album = albums.find(session, name)
            rows = [(row.version, row.policy) for row in queries.policy_versions(session, album.id)]
            return (policies.current(session, album.id) if rows else None), rows

        return self.read(read)


@pytest.fixture
def site(tmp_path) -> Site:
    """A library with one album, family, and a store at head that has never seen it."""
    site = Site(tmp_path)
    (site.library / "family").mkdir(parents=True)
    assert site.cli("db", "upgrade").exit_code == 0
    return site


def test_show_prints_the_default_policy_as_version_1(site):
    # Straight after `db upgrade`: no `albums list` and no daemon has told the store of the album yet.
    result = site.cli("policy", "show", "family")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"album": "family", "version": 1, "policy": DEFAULT}
    assert result.stderr == ""
    assert site.versions() == ((1, Policy()), [(1, DEFAULT)])


def test_set_makes_a_new_version_and_keeps_the_old_one(site):
    assert site.cli("policy", "show", "family").exit_code == 0
    result = site.cli("policy", "set", "family", "strength=large", "metadata=strip-all")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ("anon-plugin: album family policy version 2; "
                             "`anon-plugin albums republish family` renders its copies under it\n")
    changed = {**DEFAULT, "strength": "large", "metadata": "strip-all"}
    assert json.loads(site.cli("policy", "show", "family").stdout) == {"album": "family", "version": 2,
                                                                       "policy": changed}
    assert site.versions() == ((2, Policy(strength="large", metadata="strip-all")), [(1, DEFAULT), (2, changed)])

    # Changes build on the current version; typed values come back typed.
    assert site.cli("policy", "set", "family", "threshold=0.3", "enabled=no", "after_publish_timeout=5").exit_code == 0
    current, rows = site.versions()
    assert current[0] == 3 and [v for v, _ in rows] == [1, 2, 3]
    assert rows[2][1] == {**changed, "threshold": 0.3, "enabled": False, "after_publish_timeout": 5.0}
    assert rows[:2] == [(1, DEFAULT), (2, changed)]


def test_set_on_an_album_never_seen_before_keeps_the_default_as_version_1(site):
    result = site.cli("policy", "set", "family", "method=blur")
    assert result.exit_code == 0, result.stderr
    assert site.versions()[1] == [(1, DEFAULT), (2, {**DEFAULT, "method": "blur"})]


@pytest.mark.parametrize("assignments, message", [
    (["strength=huge"], "'strength=huge': strength must be one of small, medium, large, got 'huge'"),
    (["jpeg_quality=120"], "'jpeg_quality=120': jpeg_quality must be an integer from 1 to 95, got '120'"),
    (["strenght=large"], f"'strenght=large': unknown field 'strenght'; fields: {FIELDS}"),
    (["nokey"], "'nokey' needs key=value"),
    (["threshold=2"], "'threshold=2': threshold must be a number from 0 to 1 or none, got '2'"),
    (["enabled=maybe"], "'enabled=maybe': enabled must be true or false, got 'maybe'"),
    (["after_publish_timeout=0"], "'after_publish_timeout=0': after_publish_timeout must be a number of seconds > 0, "
                                  "got '0'"),
    # A good change beside a bad one: nothing is saved.
    (["strength=large", "metadata=strip-all", "method=sharpie"],
     "'method=sharpie': method must be one of blur, pixelate, solid, inpaint, generate, stylegan, got 'sharpie'"),
    (["strength=large", "strength=small"], "'strength=small': strength is set twice"),
])
def test_a_bad_assignment_fails_in_one_line_and_changes_nothing(site, assignments, message):
    assert site.cli("policy", "show", "family").exit_code == 0
    result = site.cli("policy", "set", "family", *assignments)
    assert result.exit_code == 1
    assert result.stderr == f"anon-plugin: {message}\n"
    assert result.stdout == ""
    assert site.versions() == ((1, Policy()), [(1, DEFAULT)])
    assert json.loads(site.cli("policy", "show", "family").stdout)["version"] == 1


def test_an_unknown_album_fails_in_one_line(site):
    for args in (["show", "nope"], ["set", "nope", "strength=large"]):
        result = site.cli("policy", *args)
        assert result.exit_code == 1
        assert result.stderr == "anon-plugin: no album 'nope'; `anon-plugin albums list` shows them\n"
    assert site.cli("albums", "list").exit_code == 0
    assert site.versions()[1] == []  # family itself got no policy on the way


def test_set_needs_an_assignment(site):
    result = site.cli("policy", "set", "family")
    assert result.exit_code == 2 and "Missing argument 'ASSIGNMENTS...'" in result.stderr
    assert site.cli("albums", "list").exit_code == 0
    assert site.versions()[1] == []
