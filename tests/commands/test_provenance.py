"""``anon-plugin provenance PATH`` end to end: real photos published by the real worker (the default
``generate`` policy, whose faces carry a method and a seed), a real SQLite store, CliRunner on the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import piexif
import pytest
from cli_site import Site as BaseSite
import sqlalchemy as sa

from anon_plugin.store.tables import Output

ONE_FACE = "000486.jpg"  # a wild photo with one frontal face
CAMERA_EXIF = piexif.dump({
    "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"EOS 5D", piexif.ImageIFD.Artist: b"Jane Doe"},
    "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:06:01 10:00:00", piexif.ExifIFD.BodySerialNumber: b"0123456"},
    "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2964, 100))},
})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Site(BaseSite):
    def provenance(self, path: Path) -> dict:
        result = self.cli("provenance", path)
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
        return json.loads(result.stdout)

    def outputs(self) -> list[tuple[int, str, int | None, str]]:
        return self.read(lambda session: [(o.id, o.status, o.superseded_by, o.public_path)
                                          for o in session.scalars(sa.select(Output).order_by(Output.id))])


@pytest.fixture
def site(tmp_path, wild_photos) -> Site:
    """Album family with one real photo that carries camera EXIF (GPS, serial number, artist), shared and
    published under the default policy."""
    site = Site(tmp_path)
    (site.library / "family" / "2024").mkdir(parents=True)
    original = site.library / "family" / "2024" / "a.jpg"
    shutil.copy(next(p for p in wild_photos if p.name == ONE_FACE), original)
    piexif.insert(CAMERA_EXIF, str(original))
    assert site.cli("db", "upgrade").exit_code == 0
    shared = site.cli("albums", "share", "family")
    assert shared.stderr.endswith("anon-plugin: album family shared; 1 photo(s) queued\n"), shared.stderr
    site.drain()
    return site


def test_an_original_and_its_public_copy_give_the_same_record(site):
    original = site.library / "family" / "2024" / "a.jpg"
    copy = site.public / "family" / "2024" / "a.jpg"
    assert copy.is_file()
    record = site.provenance(original)
    assert site.provenance(copy) == record

    assert record["album"] == "family" and record["library_root"] == str(site.library)
    assert record["original"] == str(original) and record["relative_path"] == "2024/a.jpg"
    assert record["sha256"] == sha256(original) and record["size"] == original.stat().st_size
    assert (record["state"], record["reason"]) == ("published", None)
    (output,) = record["outputs"]
    assert output["public_path"] == str(copy) and output["public_sha256"] == sha256(copy)
    assert output["source_sha256"] == record["sha256"]
    assert (output["status"], output["superseded_by"], output["device"]) == ("published", None, "cpu")
    assert output["policy"]["version"] == 1
    assert (output["policy"]["method"], output["policy"]["strength"], output["policy"]["metadata"]) == (
        "generate", "medium", "strip-identifying")
    assert {"yunet", "sface", "generator"} <= set(output["model_sha256s"])
    # What strip-identifying took away: the location, the serial number, the owner; never the camera.
    assert {"GPSInfo", "BodySerialNumber", "Artist"} <= set(output["removed_tags"])
    assert not {"Make", "Model", "DateTimeOriginal"} & set(output["removed_tags"])
    (face,) = output["faces"]
    assert face["index"] == 0 and len(face["box"]) == 4 and all(isinstance(v, float) for v in face["box"])
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 <= 403 and 0 <= y0 < y1 <= 500
    assert 0.6 <= face["score"] <= 1.0
    # The seed comes from the original's content: the same photo always gets the same new face.
    assert (face["method"], face["seed"], face["covered"], face["error"]) == (
        "generate", int(record["sha256"][:8], 16), False, None)


def test_an_unknown_path_fails_in_one_line(site, tmp_path):
    for path, where in ((site.library / "family" / "missing.jpg", "the library roots"),
                        (site.library / "family", "the library roots"),
                        (site.public / "family" / "missing.jpg", "the public root"),
                        (tmp_path / "elsewhere.jpg", "the library roots")):
        result = site.cli("provenance", path)
        assert result.exit_code == 1, path
        assert result.stderr == f"anon-plugin: {path}: no record of it (looked in {where})\n"
        assert result.stdout == ""


def test_after_a_policy_change_and_republish_the_old_copy_is_superseded(site):
    original = site.library / "family" / "2024" / "a.jpg"
    copy = site.public / "family" / "2024" / "a.jpg"
    first = site.provenance(copy)["outputs"][0]
    assert site.cli("policy", "set", "family", "method=blur", "metadata=strip-all").exit_code == 0
    republished = site.cli("albums", "republish", "family")
    assert republished.stderr == "anon-plugin: 1 photo(s) of family queued\n"
    site.drain()

    record = site.provenance(copy)
    assert site.provenance(original) == record
    new, old = record["outputs"]  # newest first
    assert (new["status"], new["superseded_by"], new["policy"]["version"], new["policy"]["method"]) == (
        "published", None, 2, "blur")
    assert new["public_path"] == str(copy) and new["public_sha256"] == sha256(copy) != first["public_sha256"]
    assert [f["method"] for f in new["faces"]] == ["blur"]
    assert {"Make", "Model", "GPSInfo"} <= set(new["removed_tags"])  # strip-all takes the camera too
    assert old == {**first, "status": "superseded", "superseded_by": new["id"]}
    assert site.outputs() == [(first["id"], "superseded", new["id"], str(copy)), (new["id"], "published", None,
                                                                                   str(copy))]
