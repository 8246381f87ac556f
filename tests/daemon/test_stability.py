"""The stability tracker on real files with a fake clock: the only place where time is not real."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from anon_plugin.daemon.stability import StabilityTracker

DELAY = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tracker(clock: FakeClock) -> StabilityTracker:
    return StabilityTracker(DELAY, clock=clock)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "beach.jpg"
    path.write_bytes(b"first part")
    return path


def test_ready_after_a_quiet_period_with_the_size_and_mtime_of_the_last_event(tracker, clock, photo):
    tracker.touch(photo)
    clock.advance(DELAY - 0.1)
    assert tracker.ready() == []  # not quiet long enough
    clock.advance(0.1)
    assert tracker.ready() == [photo]
    assert tracker.pending() == 0
    clock.advance(DELAY * 3)
    assert tracker.ready() == []  # handed out once


def test_an_event_restarts_the_quiet_period_from_the_file_as_it_is_then(tracker, clock, photo):
    tracker.touch(photo)
    clock.advance(DELAY - 1)
    with open(photo, "ab") as f:
        f.write(b", second part")
    tracker.touch(photo)
    clock.advance(DELAY - 0.1)
    assert tracker.ready() == []
    clock.advance(0.1)
    assert tracker.ready() == [photo]  # size and mtime as recorded at the last event


def test_a_size_change_without_an_event_delays_ready(tracker, clock, photo):
    tracker.touch(photo)
    with open(photo, "ab") as f:  # still being written, and no event told us (a network mount)
        f.write(b", second part")
    clock.advance(DELAY)
    assert tracker.ready() == []  # changed since the event: recorded again, re-armed
    clock.advance(DELAY - 0.1)
    assert tracker.ready() == []
    clock.advance(0.1)
    assert tracker.ready() == [photo]


def test_an_mtime_change_with_the_same_size_delays_ready(tracker, clock, photo):
    tracker.touch(photo)
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    clock.advance(DELAY)
    assert tracker.ready() == []
    clock.advance(DELAY)
    assert tracker.ready() == [photo]


def test_a_file_that_keeps_growing_is_never_ready(tracker, clock, photo):
    tracker.touch(photo)
    for _ in range(10):
        with open(photo, "ab") as f:
            f.write(b"more")
        clock.advance(DELAY)
        assert tracker.ready() == []
    clock.advance(DELAY)
    assert tracker.ready() == [photo]


def test_a_vanished_file_is_dropped_silently(tracker, clock, photo, caplog):
    tracker.touch(photo)
    photo.unlink()
    clock.advance(DELAY)
    assert tracker.ready() == []
    assert tracker.pending() == 0
    assert not caplog.records


def test_links_and_folders_are_never_ready(tracker, clock, photo, tmp_path):
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    for path in (link, folder):
        tracker.touch(path)
    clock.advance(DELAY)
    assert tracker.ready() == []
    assert tracker.pending() == 0


def test_forget_says_whether_the_path_was_still_waiting(tracker, clock, photo):
    tracker.touch(photo)
    assert tracker.is_pending(photo)
    assert tracker.forget(photo) is True
    assert tracker.forget(photo) is False
    clock.advance(DELAY * 3)
    assert tracker.ready() == []


def test_many_events_for_one_copy_give_one_ready(tracker, clock, photo):
    for _ in range(50):
        tracker.touch(photo)
        clock.advance(0.1)
    assert tracker.pending() == 1
    clock.advance(DELAY)
    assert tracker.ready() == [photo]


def test_ready_lists_the_settled_paths_in_the_order_they_settled(tracker, clock, tmp_path):
    paths = [tmp_path / f"{name}.jpg" for name in ("c", "a", "b")]
    for path in paths:
        path.write_bytes(b"x")
        tracker.touch(path)
        clock.advance(1)
    clock.advance(DELAY)
    assert tracker.ready() == paths


def test_touch_and_ready_from_several_threads(tmp_path):
    tracker = StabilityTracker(0.001)
    paths = [tmp_path / f"{i}.jpg" for i in range(200)]
    for path in paths:
        path.write_bytes(b"x")
    handed_out: list[Path] = []
    done = threading.Event()

    def look() -> None:
        while not done.is_set() or tracker.pending():
            handed_out.extend(tracker.ready())

    looker = threading.Thread(target=look)
    looker.start()
    toucher = [threading.Thread(target=lambda part=part: [tracker.touch(p) for p in part])
               for part in (paths[::2], paths[1::2])]
    for thread in toucher:
        thread.start()
    for thread in toucher:
        thread.join()
    done.set()
    looker.join(10)
    assert sorted(handed_out) == sorted(paths)


def test_the_delay_must_be_positive():
    with pytest.raises(ValueError, match="delay"):
        StabilityTracker(0)
