"""Atomic writes: the old file or the new one, never half of one; an existing file only replaced when asked."""

from __future__ import annotations

import io
import os

import pytest

from anon_plugin import atomic
from anon_plugin.atomic import write_atomic
from anon_plugin.errors import OutputError, OutputExistsError


def test_write_atomic_refuses_existing_unless_overwrite(tmp_path):
    target = tmp_path / "out.jpg"
    target.write_bytes(b"old")
    with pytest.raises(OutputExistsError) as caught:
        write_atomic(target, b"new")
    assert str(caught.value) == f"{target} exists" and caught.value.path == target  # the CLI names --overwrite
    assert target.read_bytes() == b"old"
    write_atomic(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg"]


def test_write_atomic_gives_new_files_the_usual_mode(tmp_path):
    write_atomic(tmp_path / "sub" / "out.jpg", b"data")
    (tmp_path / "sub" / "plain").write_bytes(b"data")
    assert os.stat(tmp_path / "sub" / "out.jpg").st_mode == os.stat(tmp_path / "sub" / "plain").st_mode


class _FailingFile(io.BytesIO):
    def __init__(self, error: BaseException):
        super().__init__()
        self.error = error

    def write(self, data):
        super().write(data[: len(data) // 2])
        raise self.error


@pytest.mark.parametrize("where", ["write", "replace", "interrupt"])
@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch, where, existing):
    target = tmp_path / "out.png"
    if existing:
        target.write_bytes(b"old")
    if where == "replace":
        def replace(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(atomic.os, "replace", replace)
    else:
        error = KeyboardInterrupt() if where == "interrupt" else OSError(28, "No space left on device")
        real_fdopen = os.fdopen

        def fdopen(fd, *args, **kwargs):
            real_fdopen(fd).close()
            return _FailingFile(error)

        monkeypatch.setattr(atomic.os, "fdopen", fdopen)

    expected = KeyboardInterrupt if where == "interrupt" else OutputError
    with pytest.raises(expected):
        write_atomic(target, b"x" * 10_000, overwrite=True)

    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.png"] if existing else [])
    if existing:
        assert target.read_bytes() == b"old"
