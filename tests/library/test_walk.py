"""The walk over the library roots: what the startup scan and the periodic rescan find."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anon_plugin.library.ignore import PathFilter
from anon_plugin.library.walk import NotAPhoto, PhotoFile, WalkProblem, albums, scan, scan_album


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(100 + len(name)))


def _found(root: Path, album: str, path: str) -> PhotoFile:
    st = (root / album / path).stat()
    return PhotoFile(root, album, path, st.st_size, st.st_mtime_ns)


def test_existing_photos_are_found_in_nested_folders_and_clutter_is_skipped(library: Path) -> None:
    _tree(library, [
        "Family/beach.jpg", "Family/2024/summer/sea.JPG", "Family/2024/aunt.heic",
        "Family/._beach.jpg", "Family/.DS_Store", "Family/@eaDir/beach.jpg/SYNOFILE_THUMB_M.jpg",
        "Family/Thumbs.db", "Family/notes.txt", "Family/.hidden/x.jpg",
        "Club/match.png", "@eaDir/x.jpg", ".stversions/old.jpg", "loose.jpg",
    ])
    assert list(scan([library], PathFilter())) == [
        _found(library, "Club", "match.png"),
        _found(library, "Family", "beach.jpg"),
        _found(library, "Family", "2024/aunt.heic"),
        _found(library, "Family", "2024/summer/sea.JPG"),
    ]


def test_albums_are_the_first_level_folders_that_are_not_ignored(library: Path, tmp_path: Path) -> None:
    for name in ("Club", "@eaDir", ".stfolder", "#recycle", "Private-Stuff"):
        (library / name).mkdir()
    _tree(library, ["loose.jpg"])
    other = tmp_path / "other"
    (other / "School").mkdir(parents=True)
    assert albums([library, other], PathFilter(("Private*",))) == [
        (library, "Club"), (library, "Family"), (other, "School")]


def test_user_patterns_prune_folders_and_skip_files(library: Path) -> None:
    _tree(library, ["Family/raw/a.jpg", "Family/2024/raw/b.jpg", "Family/c.jpg", "Family/upload.tmp.jpg"])
    found = [f.path for f in scan([library], PathFilter(("raw", "*.tmp.jpg")))]
    assert found == ["c.jpg"]


def test_symbolic_links_are_reported_and_never_followed(library: Path, outside: Path) -> None:
    _tree(outside, ["elsewhere/secret.jpg"])
    _tree(library, ["Family/beach.jpg"])
    (library / "Family" / "linked-folder").symlink_to(outside / "elsewhere", target_is_directory=True)
    (library / "Family" / "linked.jpg").symlink_to(outside / "elsewhere" / "secret.jpg")
    (library / "Linked-Album").symlink_to(outside, target_is_directory=True)
    problems: list[WalkProblem] = []
    assert [f.path for f in scan([library], PathFilter(), problems=problems)] == ["beach.jpg"]
    assert problems == [WalkProblem(library, "Family", "linked.jpg", "symbolic link, not followed", unknown=False)]


def _too_deep(parent: Path) -> str:
    """A chain of folders whose full path is longer than PATH_MAX: it exists, but no path can open it."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    names = []
    try:
        while len(str(parent)) + sum(len(n) + 1 for n in names) < 4200:
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
            names.append(name)
        photo = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.close(photo)
    finally:
        os.close(fd)
    return "/".join(names)


def test_an_unreadable_folder_is_reported_and_the_walk_goes_on(library: Path) -> None:
    _tree(library, ["Family/a.jpg", "Family/z/b.jpg", "Club/c.jpg"])
    (library / "Family" / "m").mkdir()
    deep = _too_deep(library / "Family" / "m")
    problems: list[WalkProblem] = []
    found = [(f.album, f.path) for f in scan([library], PathFilter(), problems=problems)]
    assert found == [("Club", "c.jpg"), ("Family", "a.jpg"), ("Family", "z/b.jpg")]
    assert len(problems) == 1
    assert (problems[0].root, problems[0].album) == (library, "Family")
    assert f"m/{deep}".startswith(problems[0].path) and problems[0].path.startswith("m/d")
    assert problems[0].reason.startswith("cannot read folder: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder")
def test_a_folder_without_permission_is_reported(library: Path) -> None:
    _tree(library, ["Family/a.jpg", "Family/locked/b.jpg"])
    (library / "Family" / "locked").chmod(0)
    try:
        problems: list[WalkProblem] = []
        assert [f.path for f in scan([library], PathFilter(), problems=problems)] == ["a.jpg"]
        assert problems == [WalkProblem(library, "Family", "locked", "cannot read folder: Permission denied")]
    finally:
        (library / "Family" / "locked").chmod(0o755)


def test_a_missing_root_is_reported_not_taken_for_an_empty_library(library: Path, tmp_path: Path) -> None:
    _tree(library, ["Family/a.jpg"])
    missing = tmp_path / "unmounted"
    problems: list[WalkProblem] = []
    assert [f.path for f in scan([missing, library], PathFilter(), problems=problems)] == ["a.jpg"]
    assert problems == [WalkProblem(missing, "", "", "library root is missing or not a folder")]


def test_scan_album_can_start_in_a_subfolder(library: Path) -> None:
    _tree(library, ["Family/a.jpg", "Family/2024/b.jpg", "Family/2024/06/c.jpg"])
    found = scan_album(library, "Family", PathFilter(), under="2024")
    assert [f.path for f in found] == ["2024/b.jpg", "2024/06/c.jpg"]


def test_files_that_are_neither_photos_nor_clutter_are_told_with_their_reason(library: Path) -> None:
    _tree(library, ["Family/beach.jpg", "Family/clip.mp4", "Family/2024/film.MOV", "Family/notes.txt",
                    "Family/README", "Family/.DS_Store", "Family/@eaDir/clip.mp4", "Family/.hidden.mp4",
                    "Family/upload.tmp"])
    not_photos: list[NotAPhoto] = []
    found = [f.path for f in scan_album(library, "Family", PathFilter(("*.tmp",)), not_photos=not_photos)]
    assert found == ["beach.jpg"]
    video = "video: videos are not anonymized yet"
    assert not_photos == [NotAPhoto(library, "Family", "README", "not a photo (no extension)"),
                          NotAPhoto(library, "Family", "clip.mp4", video),
                          NotAPhoto(library, "Family", "notes.txt", "not a photo (.txt)"),
                          NotAPhoto(library, "Family", "2024/film.MOV", video)]
