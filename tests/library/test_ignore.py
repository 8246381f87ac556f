"""The ignore rules: built-in clutter, the extension allowlist, and the admin's patterns on top."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from anon_plugin.formats import PHOTO_SUFFIXES
from anon_plugin.library.ignore import PathFilter


@pytest.mark.parametrize(("path", "reason"), [
    ("Family/beach.jpg", None),
    ("Family/2024/summer/sea.JPG", None),
    ("Family/phone/IMG_0001.HEIC", None),
    ("Family/scan.tiff", None),
    ("Family/.DS_Store", "ignored file .DS_Store"),
    ("Family/._beach.jpg", "ignored file ._beach.jpg"),
    ("Family/Thumbs.db", "ignored file Thumbs.db"),
    ("Family/thumbs.db", "ignored file thumbs.db"),
    ("Family/desktop.ini", "ignored file desktop.ini"),
    ("Family/.beach.jpg", "hidden file"),
    ("Family/.beach.jpg.part", "hidden file"),
    ("Family/@eaDir/beach.jpg/SYNOFILE_THUMB_M.jpg", "ignored folder @eaDir"),
    ("Family/.stfolder/x.jpg", "ignored folder .stfolder"),
    ("Family/.stversions/beach~20240101.jpg", "ignored folder .stversions"),
    ("Family/#recycle/beach.jpg", "ignored folder #recycle"),
    ("Family/.Trashes/501/beach.jpg", "ignored folder .Trashes"),
    ("Family/__MACOSX/beach.jpg", "ignored folder __MACOSX"),
    ("Family/.cache/beach.jpg", "hidden folder .cache"),
    ("@eaDir/beach.jpg", "ignored folder @eaDir"),
    ("Family/notes.txt", "not a photo (.txt)"),
    ("Family/clip.mp4", "video: videos are not anonymized yet"),
    ("Family/clip.MOV", "video: videos are not anonymized yet"),
    ("Family/README", "not a photo (no extension)"),
])
def test_built_in_rules(path: str, reason: str | None) -> None:
    assert PathFilter().reason(PurePosixPath(path)) == reason
    assert PathFilter().wanted(PurePosixPath(path)) is (reason is None)


@pytest.mark.parametrize("extension", PHOTO_SUFFIXES)
def test_every_photo_extension_is_wanted_in_any_case(extension: str) -> None:
    for name in (f"a{extension}", f"a{extension.upper()}"):
        assert PathFilter().wanted(PurePosixPath("Family", name))


@pytest.mark.parametrize(("pattern", "path", "ignored"), [
    ("*.tmp", "Family/upload.tmp", True),
    ("*.tmp", "Family/beach.jpg", False),
    ("raw", "Family/2024/raw/beach.jpg", True),
    ("raw", "Family/2024/rawhide.jpg", False),
    ("Family/private/*", "Family/private/beach.jpg", True),
    ("Family/private/*", "Family/public/beach.jpg", False),
    ("*/drafts/*", "Club/2024/drafts/beach.jpg", True),
    ("Private*", "Private-Stuff/beach.jpg", True),
    ("*.JPG.bak", "Family/beach.jpg.bak", True),
    ("IMG_*_edit.jpg", "Family/img_0001_EDIT.jpg", True),
])
def test_user_patterns_match_any_component_or_the_whole_path_ignoring_case(pattern: str, path: str,
                                                                            ignored: bool) -> None:
    reason = PathFilter((pattern,)).reason(PurePosixPath(path))
    assert (reason == f"matches pattern {pattern!r}") is ignored


def test_user_patterns_add_to_the_built_in_rules() -> None:
    path_filter = PathFilter(("*.tmp",))
    assert path_filter.reason(PurePosixPath("Family/.DS_Store")) == "ignored file .DS_Store"
    assert path_filter.reason(PurePosixPath("Family/@eaDir/x.jpg")) == "ignored folder @eaDir"
    assert path_filter.reason(PurePosixPath("Family/notes.txt")) == "not a photo (.txt)"
    assert path_filter.wanted(PurePosixPath("Family/beach.jpg"))


def test_folders_are_judged_by_folder_rules_and_patterns_only() -> None:
    path_filter = PathFilter(("raw",))
    assert path_filter.folder_reason(PurePosixPath("Family")) is None
    assert path_filter.folder_reason(PurePosixPath("Family/2024")) is None  # no extension needed
    assert path_filter.folder_reason(PurePosixPath("Family/@eaDir")) == "ignored folder @eaDir"
    assert path_filter.folder_reason(PurePosixPath(".git")) == "hidden folder .git"
    assert path_filter.folder_reason(PurePosixPath("Family/raw")) == "matches pattern 'raw'"


@pytest.mark.parametrize("path", ["/library/Family/beach.jpg", ".", "Family/../beach.jpg"])
def test_only_relative_paths_inside_the_library_are_judged(path: str) -> None:
    with pytest.raises(ValueError, match="relative to a library root"):
        PathFilter().reason(PurePosixPath(path))


def test_a_filter_is_a_frozen_value() -> None:
    assert PathFilter(("*.tmp",)) == PathFilter(("*.tmp",))
    assert hash(PathFilter()) == hash(PathFilter(()))
    with pytest.raises(AttributeError):
        PathFilter().extra = ("x",)  # type: ignore[misc]


@pytest.mark.parametrize("path", ["Family/.DS_Store", "Family/@eaDir/a.jpg", "Family/.hidden", "Family/x.tmp"])
def test_clutter_and_patterns_are_ignored_but_content_is_not(path: str) -> None:
    path_filter = PathFilter(("*.tmp",))
    assert path_filter.ignored(PurePosixPath(path)) == path_filter.reason(PurePosixPath(path)) is not None
    for content in ("Family/clip.mp4", "Family/notes.txt", "Family/beach.jpg"):
        assert path_filter.ignored(PurePosixPath(content)) is None
