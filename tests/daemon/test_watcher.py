"""The watcher on real folders with real watchdog observers: from unit cases up to supervision.

The list follows paperless-ngx's consumer tests: new, slow, moved, deleted,
shadow files, polling, existing files. Every wait has a deadline; the
stability delay is short (0.3 s) so a photo is ready in well under a second.
"""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

from anon_plugin.library.ignore import PathFilter
from anon_plugin.library.walk import scan
from anon_plugin.daemon.watcher import Change, Watcher


def test_a_new_photo_gives_one_ready_after_the_delay_on_the_watcher_thread(start_watcher, library, write_photo):
    watcher, recorder = start_watcher()
    written_at = time.monotonic()
    with open(library / "Family" / "beach.jpg", "wb") as f:  # one copy, many modified events
        for _ in range(5):
            f.write(bytes(1000))
            f.flush()
    delivered = recorder.wait_for("ready", "beach.jpg")
    assert delivered.at - written_at >= 0.3
    assert delivered.thread == "watcher"
    assert delivered.change == Change("ready", library, "Family", "beach.jpg")
    assert watcher.pending == 0  # nothing left that could become ready again
    assert recorder.changes == [delivered.change]


def test_a_slow_chunked_write_is_ready_once_after_the_last_chunk(start_watcher, library):
    watcher, recorder = start_watcher(delay=0.5)
    path = library / "Family" / "upload.jpg"
    chunk, chunks = bytes(4096), 15
    last_chunk_at: list[float] = []

    def write_slowly() -> None:
        with open(path, "wb") as f:
            for _ in range(chunks):
                f.write(chunk)
                f.flush()
                last_chunk_at[:] = [time.monotonic()]
                time.sleep(0.1)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    delivered = recorder.wait_for("ready", "upload.jpg")
    writer.join()
    assert delivered.at > last_chunk_at[0]
    assert delivered.size == len(chunk) * chunks
    assert watcher.pending == 0
    assert recorder.changes == [delivered.change]


def test_writes_that_send_no_event_still_hold_ready_back(start_watcher, library, outside, write_photo):
    """As on a network mount: the file grows but no event says so; size and mtime must catch it."""
    watcher, recorder = start_watcher(delay=0.5)
    path = write_photo(library / "Family" / "nfs.jpg", size=1000)
    os.link(path, outside / "same-inode.jpg")  # writes through this name notify nobody in the library
    appended: list[float] = []
    with open(outside / "same-inode.jpg", "ab") as f:
        for _ in range(12):
            time.sleep(0.1)
            f.write(bytes(500))
            f.flush()
            appended[:] = [time.monotonic()]
            assert not recorder.find("ready", "nfs.jpg"), "ready while the file was still growing"
    delivered = recorder.wait_for("ready", "nfs.jpg")
    assert delivered.at > appended[0]
    assert delivered.size == 1000 + 12 * 500


def test_modified_while_settling_the_ready_comes_later_with_the_whole_file(start_watcher, library, write_photo):
    watcher, recorder = start_watcher(delay=0.5)
    path = write_photo(library / "Family" / "edited.jpg", size=1000)
    time.sleep(0.3)  # well inside the quiet period (it ends at 0.5 s)
    with open(path, "ab") as f:
        f.write(bytes(1000))
    modified_at = time.monotonic()
    delivered = recorder.wait_for("ready", "edited.jpg")
    assert delivered.at - modified_at >= 0.5
    assert delivered.size == 2000
    assert watcher.pending == 0
    assert recorder.changes == [delivered.change]


def test_deleted_before_stable_gives_deleted_and_never_ready(start_watcher, library, write_photo):
    watcher, recorder = start_watcher()
    path = write_photo(library / "Family" / "oops.jpg")
    path.unlink()
    recorder.wait_for("deleted", "oops.jpg")
    assert recorder.settle(library) == [Change("deleted", library, "Family", "oops.jpg")]


def test_moved_in_from_outside_the_library_is_a_new_photo(start_watcher, library, outside, write_photo):
    watcher, recorder = start_watcher()
    source = write_photo(outside / "download.jpg")
    os.rename(source, library / "Family" / "download.jpg")
    recorder.wait_for("ready", "download.jpg")
    assert recorder.changes == [Change("ready", library, "Family", "download.jpg")]


def test_a_temp_file_renamed_to_its_name_is_one_new_photo(start_watcher, library, write_photo):
    """Sync tools and our own publisher write ``.name.part`` and rename it: only the final name counts."""
    watcher, recorder = start_watcher()
    temp = write_photo(library / "Family" / ".beach.jpg.part")
    os.rename(temp, library / "Family" / "beach.jpg")
    recorder.wait_for("ready", "beach.jpg")
    assert recorder.changes == [Change("ready", library, "Family", "beach.jpg")]


def test_renamed_inside_an_album_is_moved(start_watcher, library, write_photo):
    write_photo(library / "Family" / "IMG_0001.jpg")
    (library / "Family" / "2024").mkdir()  # made just before the rename, inotify may not watch it yet
    watcher, recorder = start_watcher()
    os.rename(library / "Family" / "IMG_0001.jpg", library / "Family" / "2024" / "beach.jpg")
    recorder.wait_for("moved", "IMG_0001.jpg")
    assert recorder.settle(library) == [Change("moved", library, "Family", "IMG_0001.jpg", new_path="2024/beach.jpg")]


def test_a_photo_renamed_before_it_settled_is_new_under_its_new_name(start_watcher, library, write_photo):
    watcher, recorder = start_watcher()
    write_photo(library / "Family" / "a.jpg")
    os.rename(library / "Family" / "a.jpg", library / "Family" / "b.jpg")
    recorder.wait_for("ready", "b.jpg")
    assert recorder.changes == [Change("deleted", library, "Family", "a.jpg"),
                                Change("ready", library, "Family", "b.jpg")]


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_a_folder_renamed_inside_an_album_moves_each_photo(start_watcher, library, write_photo, mode):
    for name in ("a.jpg", "b.jpg", "deeper/c.jpg", "notes.txt"):
        write_photo(library / "Family" / "2023" / name)
    watcher, recorder = start_watcher(mode=mode)
    os.rename(library / "Family" / "2023", library / "Family" / "Summer 2023")
    recorder.wait_for("moved", "2023/deeper/c.jpg")
    moves = sorted((c.path, c.new_path) for c in recorder.settle(library))
    assert moves == [("2023/a.jpg", "Summer 2023/a.jpg"), ("2023/b.jpg", "Summer 2023/b.jpg"),
                     ("2023/deeper/c.jpg", "Summer 2023/deeper/c.jpg")]


def test_moved_to_another_album_is_deleted_there_and_new_here(start_watcher, library, write_photo):
    write_photo(library / "Family" / "match.jpg")
    (library / "Club").mkdir()
    watcher, recorder = start_watcher()
    os.rename(library / "Family" / "match.jpg", library / "Club" / "match.jpg")
    recorder.wait_for("ready", "match.jpg", album="Club")
    assert recorder.changes == [Change("deleted", library, "Family", "match.jpg"),
                                Change("ready", library, "Club", "match.jpg")]


def test_moved_out_of_the_library_is_deleted(start_watcher, library, outside, write_photo):
    write_photo(library / "Family" / "private.jpg")
    watcher, recorder = start_watcher()
    os.rename(library / "Family" / "private.jpg", outside / "private.jpg")
    recorder.wait_for("deleted", "private.jpg")
    assert recorder.settle(library) == [Change("deleted", library, "Family", "private.jpg")]


def test_renamed_to_an_ignored_name_is_deleted(start_watcher, library, write_photo):
    write_photo(library / "Family" / "beach.jpg")
    watcher, recorder = start_watcher()
    os.rename(library / "Family" / "beach.jpg", library / "Family" / "beach.jpg.bak")
    recorder.wait_for("deleted", "beach.jpg")
    assert recorder.settle(library) == [Change("deleted", library, "Family", "beach.jpg")]


def test_an_album_renamed_is_removed_and_added_with_its_photos_anew(start_watcher, library, write_photo):
    write_photo(library / "Family" / "2024" / "beach.jpg")
    watcher, recorder = start_watcher()
    os.rename(library / "Family", library / "Familie")
    recorder.wait_for("ready", "2024/beach.jpg", album="Familie")
    assert recorder.changes == [Change("album_removed", library, "Family", ""),
                                Change("album_added", library, "Familie", ""),
                                Change("deleted", library, "Family", "2024/beach.jpg"),
                                Change("ready", library, "Familie", "2024/beach.jpg")]


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_a_folder_moved_out_of_the_library_is_deleted_whole(start_watcher, library, outside, write_photo, mode):
    write_photo(library / "Family" / "2022" / "a.jpg")
    watcher, recorder = start_watcher(mode=mode)
    os.rename(library / "Family" / "2022", outside / "2022")
    recorder.wait_for("deleted", "2022")
    changes = recorder.settle(library)
    assert Change("deleted", library, "Family", "2022", folder=True) in changes
    # polling sees the photo go as well; inotify only sees the folder
    assert set(changes) <= {Change("deleted", library, "Family", "2022", folder=True),
                            Change("deleted", library, "Family", "2022/a.jpg")}


def test_a_folder_moved_in_is_watched_for_photos_added_later(start_watcher, library, outside, write_photo):
    """watchdog's inotify does not watch a folder moved in from outside: the watcher must notice and rewatch."""
    write_photo(outside / "Trip" / "day1" / "a.jpg")
    watcher, recorder = start_watcher()
    os.rename(outside / "Trip", library / "Trip")
    write_photo(library / "Trip" / "day1" / "b.jpg")  # most likely before the new watch: the catch-up scan's
    recorder.wait_for("ready", "day1/a.jpg", album="Trip")
    recorder.wait_for("ready", "day1/b.jpg", album="Trip")
    write_photo(library / "Trip" / "day2" / "c.jpg")  # the new watch's
    recorder.wait_for("ready", "day2/c.jpg", album="Trip")
    assert recorder.changes[0] == Change("album_added", library, "Trip", "")
    assert sorted(c.path for c in recorder.changes if c.kind == "ready") == ["day1/a.jpg", "day1/b.jpg",
                                                                           "day2/c.jpg"]
    assert watcher.restarts == 0  # a rewatch is not a failure


def test_shadow_files_system_folders_and_user_patterns_give_nothing(start_watcher, library, write_photo):
    watcher, recorder = start_watcher(ignore=("*.tmp.jpg", "drafts"))
    for name in ("._beach.jpg", ".DS_Store", "Thumbs.db", "desktop.ini", ".hidden.jpg", "notes.txt",
                 "@eaDir/beach.jpg/SYNOFILE_THUMB_XL.jpg", ".stversions/beach~1.jpg", "upload.tmp.jpg",
                 "drafts/x.jpg"):
        write_photo(library / "Family" / name)
    write_photo(library / "@eaDir" / "x.jpg")
    write_photo(library / "loose.jpg")  # in no album
    assert recorder.settle(library) == []


def test_albums_appear_and_disappear_with_their_folders(start_watcher, library, write_photo):
    watcher, recorder = start_watcher()
    (library / "Club").mkdir()
    recorder.wait_for("album_added", "", album="Club")
    write_photo(library / "Club" / "match.jpg")
    recorder.wait_for("ready", "match.jpg", album="Club")
    shutil.rmtree(library / "Club")
    recorder.wait_for("album_removed", "", album="Club")
    (library / ".Trashes").mkdir()
    (library / "Club2").mkdir()
    recorder.wait_for("album_added", "", album="Club2")
    assert recorder.changes == [Change("album_added", library, "Club", ""),
                                Change("ready", library, "Club", "match.jpg"),
                                Change("deleted", library, "Club", "match.jpg"),
                                Change("album_removed", library, "Club", ""),
                                Change("album_added", library, "Club2", "")]


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_new_and_deleted_photos(start_watcher, library, write_photo, mode):
    watcher, recorder = start_watcher(mode=mode)
    write_photo(library / "Family" / "2024" / "beach.jpg")
    recorder.wait_for("ready", "2024/beach.jpg")
    (library / "Family" / "2024" / "beach.jpg").unlink()
    recorder.wait_for("deleted", "2024/beach.jpg")
    assert recorder.changes == [Change("ready", library, "Family", "2024/beach.jpg"),
                                Change("deleted", library, "Family", "2024/beach.jpg")]


def test_photos_present_at_start_send_nothing_and_scan_finds_them(start_watcher, library, write_photo):
    write_photo(library / "Family" / "old.jpg")
    watcher, recorder = start_watcher()
    assert recorder.settle(library) == []
    assert [f.path for f in scan([library], PathFilter())] == ["old.jpg", "zz-sentinel.jpg"]


def test_several_roots_are_watched(start_watcher, library, tmp_path, write_photo):
    second = tmp_path / "second"
    (second / "School").mkdir(parents=True)
    watcher, recorder = start_watcher(roots=[library, second])
    write_photo(second / "School" / "class.jpg")
    delivered = recorder.wait_for("ready", "class.jpg", album="School")
    assert delivered.change.root == second


def test_a_stopped_observer_is_replaced(start_watcher, library, write_photo, wait_until, caplog):
    watcher, recorder = start_watcher()
    first = watcher._observer
    first.stop()
    wait_until(lambda: watcher.restarts == 1, "a new observer")
    write_photo(library / "Family" / "after.jpg")
    recorder.wait_for("ready", "after.jpg")
    assert watcher.restarts == 1
    assert not first.is_alive()
    assert "file observer stopped" in caplog.text


@pytest.mark.parametrize("mode", ["native", "polling"])
def test_a_root_that_vanishes_and_returns_is_watched_again(start_watcher, library, tmp_path, write_photo,
                                                           wait_until, mode):
    """An unmounted share: polling's emitter dies on it (watchdog #1065), inotify's keeps watching the old inode."""
    watcher, recorder = start_watcher(mode=mode)
    library.rename(tmp_path / "unmounted")
    wait_until(lambda: watcher.restarts == 1, "the observer to be replaced without the root")
    (tmp_path / "unmounted").rename(library)
    wait_until(lambda: watcher.restarts == 2, "the root to be watched again")
    write_photo(library / "Family" / "back.jpg")
    recorder.wait_for("ready", "back.jpg")
    assert watcher.restarts == 2


def test_a_failing_sink_does_not_stop_later_changes(start_watcher, library, write_photo, caplog):
    recorder_calls: list[Change] = []

    def sink(change: Change) -> None:
        recorder_calls.append(change)
        if len(recorder_calls) == 1:
            raise RuntimeError("database is locked")

    watcher, recorder = start_watcher(sink=lambda change: (recorder(change), sink(change)))
    write_photo(library / "Family" / "first.jpg")
    recorder.wait_for("ready", "first.jpg")
    write_photo(library / "Family" / "second.jpg")
    recorder.wait_for("ready", "second.jpg")
    assert watcher.is_alive()
    assert "the change sink failed" in caplog.text and "database is locked" in caplog.text


def test_stop_joins_every_thread(library, write_photo):
    before = set(threading.enumerate())
    watcher = Watcher([library], PathFilter(), stability_delay=0.3, sink=lambda change: None)
    watcher.start()
    assert len(set(threading.enumerate()) - before) >= 3  # ours, the dispatcher, an emitter
    write_photo(library / "Family" / "beach.jpg")
    assert watcher.stop(timeout=5)
    assert not watcher.is_alive()
    assert set(threading.enumerate()) - before == set()


def test_a_watcher_takes_its_settings_from_settings(library):
    from anon_plugin.config import AdminSettings, InferenceSettings, QueueSettings, Settings, WatchSettings

    settings = Settings(library_roots=(library,), database_url="sqlite://", inference=InferenceSettings(threads=1),
                        admin=AdminSettings(), queue=QueueSettings(),
                        watch=WatchSettings(mode="polling", stability_delay=2.0, ignore=("*.tmp",)))
    watcher = Watcher.from_settings(settings, sink=lambda change: None)
    assert (watcher.roots, watcher.mode) == ((library,), "polling")


def test_bad_arguments_are_refused(library):
    with pytest.raises(ValueError, match="mode"):
        Watcher([library], PathFilter(), stability_delay=1, mode="inotify", sink=lambda change: None)
    with pytest.raises(ValueError, match="kind"):
        Change("created", library, "Family", "a.jpg")
    with pytest.raises(ValueError, match="new_path"):
        Change("moved", library, "Family", "a.jpg")
