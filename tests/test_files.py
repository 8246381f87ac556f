"""Planning a mirrored output tree and processing one file into an Outcome."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import piexif
import pytest
from PIL import Image

from anon_plugin.commands.files import PlannedFile, SkippedInput, explain_path, plan, process
from anon_plugin.inference.pipeline import Anonymizer


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture(scope="module")
def anonymizer() -> Anonymizer:
    return Anonymizer(method="blur", verify=False)  # fast; what is filled does not matter here


@pytest.fixture(scope="module")
def photo(wild_photos: list[Path]) -> Path:
    return min(wild_photos, key=lambda p: p.stat().st_size)


def test_plan_mirrors_the_tree_and_skips_the_output_folder_inside_it(tmp_path):
    src = tmp_path / "in"
    wanted = [Path("a.jpg"), Path("sub/b.PNG"), Path("sub/deeper/c.jpeg"), Path("sub/phone.HEIC")]
    for rel in wanted:
        touch(src / rel)
    for rel in ["notes.txt", "sub/README", ".hidden.jpg", ".cache/d.jpg", "a.explain.png", "out/old.jpg",
                "out/sub/b.PNG"]:
        touch(src / rel)

    planned = plan([src], src / "out", overwrite=True)

    assert planned.refused == ()
    assert sorted((j.source.relative_to(src), j.target) for j in planned.jobs) == sorted(
        (rel, (src / "out" / rel).resolve()) for rel in wanted)
    # Everything else is named with its reason, except our own outputs (out/, *.explain.png).
    assert sorted((s.path.relative_to(src), s.reason) for s in planned.skipped) == [
        (Path(".cache"), "hidden folder"), (Path(".hidden.jpg"), "hidden file"),
        (Path("notes.txt"), "not a supported image format (.txt)"),
        (Path("sub/README"), "not a supported image format (no suffix)")]


def test_plan_names_jpeg_outputs_jpg(tmp_path):
    src = tmp_path / "in"
    for rel in ["a.png", "b.jpeg", "c.HEIC", "d.jpg", "d.png"]:
        touch(src / rel)
    planned = plan([src], tmp_path / "out", output_format="jpeg")
    assert sorted(j.target.name for j in planned.jobs) == ["a.jpg", "b.jpeg", "c.jpg", "d.jpg"]
    taken = (tmp_path / "out" / "d.jpg").resolve()
    assert [o.error for o in planned.refused] == [f"{src / 'd.jpg'} already writes {taken}"]


@contextlib.contextmanager
def as_nobody() -> Iterator[None]:
    """Run the block with an unprivileged effective uid when we are root, so that mode 000 means it."""
    if os.geteuid() != 0:
        yield
        return
    os.setresgid(65534, 65534, 0)  # the saved ids stay root's, so we can come back
    os.setresuid(65534, 65534, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)


def test_unreadable_folders_are_reported_and_do_not_stop_the_others():
    base = Path(tempfile.mkdtemp(prefix="anon-files-"))  # not under pytest's 0700 tmp: nobody must reach it
    try:
        base.chmod(0o755)
        touch(base / "good" / "a.jpg")
        touch(base / "good" / "locked" / "b.jpg")
        touch(base / "locked" / "c.jpg")
        for folder in (base / "good", base / "good" / "locked", base / "locked"):
            folder.chmod(0o755)
        (base / "good" / "a.jpg").chmod(0o644)
        (base / "good" / "locked").chmod(0)
        (base / "locked").chmod(0)
        with as_nobody():
            assert not os.access(base / "locked", os.R_OK), "mode 000 is readable here"
            planned = plan([base / "locked", base / "good"], base / "out")
    finally:
        for folder in (base / "good" / "locked", base / "locked"):
            folder.chmod(0o755)
        shutil.rmtree(base)

    assert [j.source for j in planned.jobs] == [base / "good" / "a.jpg"]
    assert planned.skipped == (
        SkippedInput(base / "locked", "folder cannot be read (permission denied)"),
        SkippedInput(base / "good" / "locked", "folder cannot be read (permission denied)"),
    )


def test_plan_refuses_missing_colliding_existing_and_in_place(tmp_path):
    out = tmp_path / "out"
    a, b = touch(tmp_path / "x" / "same.jpg"), touch(tmp_path / "y" / "same.jpg")
    kept = touch(tmp_path / "kept.png")
    touch(out / "kept.png")

    planned = plan([a, b, kept, tmp_path / "missing.jpg"], out)

    assert [j.source for j in planned.jobs] == [a]
    errors = {o.job.source: o.error for o in planned.refused}
    assert set(errors) == {b, kept, tmp_path / "missing.jpg"}
    assert "already writes" in errors[b] and "exists" in errors[kept]
    assert "no such file" in errors[tmp_path / "missing.jpg"]

    planned = plan([kept], out, overwrite=True)
    assert [j.source for j in planned.jobs] == [kept] and planned.refused == ()

    planned = plan([kept], tmp_path)
    assert planned.jobs == () and "replace the original" in planned.refused[0].error


def test_plan_refuses_an_existing_explain_picture(tmp_path):
    photo = touch(tmp_path / "p.jpg")
    touch(explain_path(tmp_path / "out" / "p.jpg"))
    assert plan([photo], tmp_path / "out").refused == ()
    planned = plan([photo], tmp_path / "out", explain=True)
    assert planned.jobs == () and "p.explain.png exists" in planned.refused[0].error


def test_process_writes_the_anonymized_photo(tmp_path, anonymizer, photo):
    source = tmp_path / photo.name
    Image.open(photo).save(source, quality=90, exif=piexif.dump({
        "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Artist: b"Jane Doe"},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N"}}))
    target = tmp_path / "out" / photo.name
    outcome = process(PlannedFile(source, target), anonymizer, max_pixels=10**8, explain=True,
                      metadata="strip-identifying")
    assert outcome.ok and len(outcome.result.faces) == 1
    assert outcome.removed == ("Artist", "GPSInfo") and outcome.notes == ()
    assert Image.open(target).size == Image.open(photo).size
    assert dict(Image.open(target).getexif()) == {0x010F: "Canon"}
    assert Image.open(explain_path(target)).format == "PNG"

    png = tmp_path / "out" / "photo.jpg"
    outcome = process(PlannedFile(target, png), anonymizer, max_pixels=10**8, output_format="jpeg", jpeg_quality=80)
    assert outcome.ok and outcome.removed == ("Make",) and Image.open(png).format == "JPEG"


def test_process_turns_failures_into_outcomes(tmp_path, anonymizer, photo):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    outcome = process(PlannedFile(bad, tmp_path / "out" / "bad.jpg"), anonymizer, max_pixels=10**8)
    assert not outcome.ok and outcome.result is None and outcome.error.startswith("not an image")

    blocker = touch(tmp_path / "file")  # the target's folder is a file: the write fails
    outcome = process(PlannedFile(photo, blocker / photo.name), anonymizer, max_pixels=10**8)
    assert not outcome.ok and "cannot write" in outcome.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jpg", "file"]
