"""``anon-plugin albums`` end to end: CliRunner on the real CLI, a real SQLite store, real folders and photos."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import sqlalchemy as sa
from cli_site import Site as BaseSite
from click.testing import Result

from anon_plugin.store.tables import Album, Job, Output, Photo

ONE_FACE, SMALL = "000486.jpg", "003817.jpg"  # wild photos with one face each
HEADER = (f"{'album':24} {'source':6} {'shared':6} {'policy':6} {'photos':>6} {'published':>9} {'failed':>6} "
          f"{'held':>5} {'pending':>7}")


class Site(BaseSite):
    """The shared site, with what the albums commands show: the listing, the jobs, the public files."""

    def listed(self) -> dict[str, dict]:
        result = self.cli("albums", "list", "--json")
        assert result.exit_code == 0, result.stderr
        return {f"{row.pop('root')}/{row['name']}": row for row in json.loads(result.stdout)}

    def query(self, statement):
        return self.read(lambda session: session.execute(statement).all())

    def jobs(self) -> list[tuple[str, str]]:
        """(photo path, job state) of every job row."""
        return sorted(self.query(sa.select(Photo.relative_path, Job.state).join(Photo, Photo.id == Job.photo_id)))

    def public_files(self) -> list[str]:
        return sorted(p.relative_to(self.public).as_posix() for p in self.public.rglob("*") if p.is_file())


def last_line(result: Result) -> str:
    """The command's own message: the last line on stderr (a progress label may come before it)."""
    return result.stderr.rstrip("\n").splitlines()[-1]


@pytest.fixture
def site(tmp_path, wild_photos, clean_env) -> Site:
    """Albums family (two photos and a text file named .jpg) and trips (one photo); the store at head."""
    by_name = {p.name: p for p in wild_photos}
    library = tmp_path / "library"
    (library / "family" / "2024").mkdir(parents=True)
    (library / "trips").mkdir()
    shutil.copy(by_name[ONE_FACE], library / "family" / "a.jpg")
    shutil.copy(by_name[SMALL], library / "family" / "2024" / "b.jpg")
    (library / "family" / "notes.jpg").write_text("not a photo")
    shutil.copy(by_name[SMALL], library / "trips" / "c.jpg")
    site = Site(tmp_path, [library])
    result = site.cli("db", "upgrade")
    assert result.exit_code == 0 and result.stderr.endswith("(head)\n"), result.stderr
    return site


def test_list_shows_every_album_before_and_after_sharing(site):
    root = site.roots[0]
    before = site.cli("albums", "list")
    assert before.exit_code == 0, before.stderr
    assert before.stdout.splitlines() == [
        HEADER,
        f"{'family':24} {'folder':6} {'no':6} {'-':6} {0:>6} {0:>9} {0:>6} {0:>5} {0:>7}",
        f"{'trips':24} {'folder':6} {'no':6} {'-':6} {0:>6} {0:>9} {0:>6} {0:>5} {0:>7}",
    ]
    unshared = {"shared": False, "policy_version": None, "photos": 0, "published": 0, "failed": 0, "held": 0,
                "pending": 0, "missing": False, "source": "folder", "not_published": []}
    assert site.listed() == {f"{root}/family": {"name": "family", **unshared},
                             f"{root}/trips": {"name": "trips", **unshared}}

    shared = site.cli("albums", "share", "family")
    assert shared.exit_code == 0, shared.stderr
    assert last_line(shared) == "anon-plugin: album family shared; 3 photo(s) queued"
    assert shared.stdout == ""
    assert site.jobs() == [("2024/b.jpg", "queued"), ("a.jpg", "queued"), ("notes.jpg", "queued")]

    after = site.cli("albums", "list")
    assert after.stdout.splitlines() == [
        HEADER,
        f"{'family':24} {'folder':6} {'yes':6} {'1':6} {3:>6} {0:>9} {0:>6} {0:>5} {3:>7}",
        f"{'trips':24} {'folder':6} {'no':6} {'-':6} {0:>6} {0:>9} {0:>6} {0:>5} {0:>7}",
    ]
    assert site.listed() == {
        f"{root}/family": {"name": "family", "shared": True, "policy_version": 1, "photos": 3, "published": 0,
                           "failed": 0, "held": 0, "pending": 3, "missing": False, "source": "folder",
                           "not_published": []},
        f"{root}/trips": {"name": "trips", **unshared},
    }


def test_sharing_again_queues_nothing_new(site):
    assert site.cli("albums", "share", "family").exit_code == 0
    jobs = site.jobs()
    again = site.cli("albums", "share", "family")
    assert again.exit_code == 0, again.stderr
    # Nothing new is queued while the photos wait: no job row is added, and the message says 0.
    assert last_line(again) == "anon-plugin: album family shared; 0 photo(s) queued"
    assert site.jobs() == jobs and len(jobs) == 3
    site.drain()
    assert site.listed()[f"{site.roots[0]}/family"] == {
        "name": "family", "shared": True, "policy_version": 1, "photos": 3, "published": 2, "failed": 1,
        "held": 0, "pending": 0, "missing": False, "source": "folder", "not_published": []}
    done = site.jobs()
    # Published (or failed for good) and unchanged: sharing once more queues nothing at all.
    once_more = site.cli("albums", "share", "family")
    assert last_line(once_more) == "anon-plugin: album family shared; 0 photo(s) queued"
    assert site.jobs() == done and {state for _, state in done} == {"done", "failed"}


def test_a_shared_album_lists_the_files_it_does_not_publish_with_the_reason(site):
    """Videos and other files that are not photos are counted and listed; clutter stays silent."""
    family = site.roots[0] / "family"
    for name in ("clip.mp4", "2024/film.MOV", "readme.txt", ".DS_Store", "@eaDir/a.jpg/SYNOFILE_THUMB_M.jpg"):
        (family / name).parent.mkdir(parents=True, exist_ok=True)
        (family / name).write_bytes(b"not published")
    assert site.listed()[f"{site.roots[0]}/family"]["not_published"] == []  # not shared: nothing is walked

    assert last_line(site.cli("albums", "share", "family")) == "anon-plugin: album family shared; 3 photo(s) queued"
    video = "video: videos are not anonymized yet"
    listed = site.listed()
    assert listed[f"{site.roots[0]}/family"]["not_published"] == [
        {"path": "2024/film.MOV", "reason": video},
        {"path": "clip.mp4", "reason": video},
        {"path": "readme.txt", "reason": "not a photo (.txt)"},
    ]
    assert listed[f"{site.roots[0]}/family"]["photos"] == 3
    assert listed[f"{site.roots[0]}/trips"]["not_published"] == []
    text = site.cli("albums", "list").stdout.splitlines()
    assert text[1] == (f"{'family':24} {'folder':6} {'yes':6} {'1':6} {3:>6} {0:>9} {0:>6} {0:>5} {3:>7}"
                       "  (3 file(s) not published: --json lists them with the reason)")
    assert text[2] == f"{'trips':24} {'folder':6} {'no':6} {'-':6} {0:>6} {0:>9} {0:>6} {0:>5} {0:>7}"


def test_sharing_an_unknown_album_fails_in_one_line(site):
    result = site.cli("albums", "share", "x")
    assert result.exit_code == 1
    assert result.stderr == "anon-plugin: no album 'x'; `anon-plugin albums list` shows them\n"
    assert result.stdout == ""
    assert not any(row["shared"] for row in site.listed().values()) and site.jobs() == []


def test_a_name_in_two_library_roots_needs_root_slash_name(tmp_path, wild_photos, clean_env):
    first, second = tmp_path / "one", tmp_path / "two"
    for root in (first, second):
        (root / "family").mkdir(parents=True)
        shutil.copy(wild_photos[0], root / "family" / "a.jpg")
    site = Site(tmp_path, [first, second])
    assert site.cli("db", "upgrade").exit_code == 0

    result = site.cli("albums", "share", "family")
    assert result.exit_code == 1
    assert result.stderr == (f"anon-plugin: 'family' is an album in several library roots; say which: "
                             f"{first}/family, {second}/family\n")
    assert site.jobs() == []

    chosen = site.cli("albums", "share", f"{second}/family")
    assert chosen.exit_code == 0, chosen.stderr
    assert last_line(chosen) == f"anon-plugin: album {second}/family shared; 1 photo(s) queued"
    listed = site.listed()
    assert (listed[f"{first}/family"]["shared"], listed[f"{second}/family"]["shared"]) == (False, True)
    (queued,) = site.query(sa.select(Album.root).join(Photo, Photo.album_id == Album.id)
                           .join(Job, Job.photo_id == Photo.id))
    assert queued == (str(second),)

    # Both would publish to public/family, each overwriting and removing the other's copies: refused.
    clash = site.cli("albums", "share", f"{first}/family")
    assert clash.exit_code == 1
    assert clash.stderr == (f"anon-plugin: album 'family': {second}/family is shared and publishes to the same "
                            "public folder; unshare it first, or rename one of the two folders\n")
    assert site.listed()[f"{first}/family"]["shared"] is False and len(site.jobs()) == 1


def test_share_new_albums_shares_each_new_album_but_a_namesake_of_a_shared_one(tmp_path, wild_photos, clean_env,
                                                                           caplog):
    first, second = tmp_path / "one", tmp_path / "two"
    for root, album in ((first, "family"), (first, "club"), (second, "family")):
        (root / album).mkdir(parents=True)
        shutil.copy(wild_photos[0], root / album / "a.jpg")
    site = Site(tmp_path, [first, second])
    site.env["ANON_SHARE_NEW_ALBUMS"] = "true"
    assert site.cli("db", "upgrade").exit_code == 0
    with caplog.at_level(logging.WARNING, logger="anon_plugin.albums"):
        shared = {album: row["shared"] for album, row in site.listed().items()}
    assert shared == {f"{first}/club": True, f"{first}/family": True, f"{second}/family": False}
    assert f"new album family in {second} not shared: {first}/family shares that name" in caplog.text


def test_unshare_asks_then_removes_the_public_copies(site):
    # blur, unverified: fast, and the method does not matter here
    assert site.cli("policy", "set", "family", "method=blur", "verify=false").exit_code == 0
    assert site.cli("albums", "share", "family").exit_code == 0
    site.drain()
    assert site.public_files() == ["family/2024/b.jpg", "family/a.jpg"]

    refused = site.cli("albums", "unshare", "family", input="n\n")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Remove the 2 public copies of family? [y/N]: ")
    assert refused.stderr.rstrip("\n").endswith("Aborted!")
    assert site.public_files() == ["family/2024/b.jpg", "family/a.jpg"]
    assert sorted(s for (s,) in site.query(sa.select(Output.status))) == ["published", "published"]
    assert site.listed()[f"{site.roots[0]}/family"]["shared"] is True

    done = site.cli("albums", "unshare", "family", "--yes")
    assert done.exit_code == 0, done.stderr
    assert done.stderr == "anon-plugin: album family unshared; 2 public copies removed\n"
    assert site.public_files() == []
    assert sorted(s for (s,) in site.query(sa.select(Output.status))) == ["removed", "removed"]  # records stay
    family = site.listed()[f"{site.roots[0]}/family"]
    assert (family["shared"], family["published"]) == (False, 0)

    # Nothing is left to remove: the question names 0 copies, and saying yes removes none.
    again = site.cli("albums", "unshare", "family", input="y\n")
    assert again.exit_code == 0
    assert again.stderr.startswith("Remove the 0 public copies of family? [y/N]: ")
    assert last_line(again) == "anon-plugin: album family unshared; 0 public copies removed"


def test_republishing_an_unshared_album_fails_in_one_line(site):
    assert site.cli("albums", "list").exit_code == 0  # the store learns the albums
    result = site.cli("albums", "republish", "trips")
    assert result.exit_code == 1
    assert result.stderr == "anon-plugin: album 'trips' is not shared; share it first\n"
    assert site.jobs() == []

    unknown = site.cli("albums", "republish", "nope")
    assert (unknown.exit_code, unknown.stderr) == (1, "anon-plugin: no album 'nope'; `anon-plugin albums list` "
                                                      "shows them\n")


def test_republish_queues_every_photo_of_a_shared_album(site):
    assert site.cli("policy", "set", "trips", "method=blur", "verify=false").exit_code == 0
    assert site.cli("albums", "share", "trips").exit_code == 0
    site.drain()
    result = site.cli("albums", "republish", "trips")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "anon-plugin: 1 photo(s) of trips queued\n"
    assert site.jobs() == [("c.jpg", "done"), ("c.jpg", "queued")]


def test_an_album_whose_folder_went_missing_can_still_be_unshared(site, tmp_path):
    """Its copies stay published while the folder is away (an unmounted share looks the same):
    the admin must still see it and be able to unshare it."""
    assert site.cli("policy", "set", "family", "method=blur", "verify=false").exit_code == 0
    assert site.cli("albums", "share", "family").exit_code == 0
    site.drain()
    assert site.public_files() == ["family/2024/b.jpg", "family/a.jpg"]
    shutil.move(str(site.roots[0] / "family"), tmp_path / "away")
    listing = site.cli("albums", "list")
    assert "family" in listing.stdout and "folder missing" in listing.stdout
    assert site.listed()[f"{site.roots[0]}/family"]["missing"] is True
    done = site.cli("albums", "unshare", "family", "--yes")
    assert done.exit_code == 0, done.stderr
    assert last_line(done) == "anon-plugin: album family unshared; 2 public copies removed"
    assert site.public_files() == []
