"""Planning a mirrored output tree and processing one file into an Outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from anon_plugin.files import Job, explain_path, plan, process
from anon_plugin.inference.pipeline import Anonymizer


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture(scope="module")
def anonymizer() -> Anonymizer:
    return Anonymizer(method="blur")


@pytest.fixture(scope="module")
def photo(wild_photos: list[Path]) -> Path:
    return min(wild_photos, key=lambda p: p.stat().st_size)


def test_plan_mirrors_the_tree_and_skips_the_output_folder_inside_it(tmp_path):
    src = tmp_path / "in"
    wanted = [Path("a.jpg"), Path("sub/b.PNG"), Path("sub/deeper/c.jpeg")]
    for rel in wanted:
        touch(src / rel)
    for rel in ["notes.txt", ".hidden.jpg", ".cache/d.jpg", "a.explain.png", "out/old.jpg", "out/sub/b.PNG"]:
        touch(src / rel)

    jobs, refused = plan([src], src / "out", overwrite=True)

    assert refused == []
    assert sorted((j.source.relative_to(src), j.target) for j in jobs) == sorted(
        (rel, (src / "out" / rel).resolve()) for rel in wanted)


def test_plan_refuses_missing_colliding_existing_and_in_place(tmp_path):
    out = tmp_path / "out"
    a, b = touch(tmp_path / "x" / "same.jpg"), touch(tmp_path / "y" / "same.jpg")
    kept = touch(tmp_path / "kept.png")
    touch(out / "kept.png")

    jobs, refused = plan([a, b, kept, tmp_path / "missing.jpg"], out)

    assert [j.source for j in jobs] == [a]
    errors = {o.job.source: o.error for o in refused}
    assert set(errors) == {b, kept, tmp_path / "missing.jpg"}
    assert "already writes" in errors[b] and "exists" in errors[kept] and "no such file" in errors[tmp_path / "missing.jpg"]

    jobs, refused = plan([kept], out, overwrite=True)
    assert [j.source for j in jobs] == [kept] and refused == []

    jobs, refused = plan([kept], tmp_path)
    assert jobs == [] and "replace the original" in refused[0].error


def test_plan_refuses_an_existing_explain_picture(tmp_path):
    photo = touch(tmp_path / "p.jpg")
    touch(explain_path(tmp_path / "out" / "p.jpg"))
    assert plan([photo], tmp_path / "out")[1] == []
    jobs, refused = plan([photo], tmp_path / "out", explain=True)
    assert jobs == [] and "p.explain.png exists" in refused[0].error


def test_process_writes_the_anonymized_photo(tmp_path, anonymizer, photo):
    target = tmp_path / "out" / photo.name
    outcome = process(Job(photo, target), anonymizer, max_pixels=10**8, explain=True)
    assert outcome.ok and len(outcome.result.faces) == 1
    assert Image.open(target).size == Image.open(photo).size
    assert Image.open(explain_path(target)).format == "PNG"


def test_process_turns_failures_into_outcomes(tmp_path, anonymizer, photo):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    outcome = process(Job(bad, tmp_path / "out" / "bad.jpg"), anonymizer, max_pixels=10**8)
    assert not outcome.ok and outcome.result is None and outcome.error.startswith("not an image")

    blocker = touch(tmp_path / "file")  # the target's folder is a file: the write fails
    outcome = process(Job(photo, blocker / photo.name), anonymizer, max_pixels=10**8)
    assert not outcome.ok and "cannot write" in outcome.error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jpg", "file"]
