"""``anon-plugin worker`` refusing to start where it cannot serve: one line, and the exit code of its kind."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from cli_site import Site


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """worker points the ``anon_plugin`` logger at the stderr of the moment: put it back for later tests."""
    logger = logging.getLogger("anon_plugin")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def site(tmp_path: Path) -> Site:
    made = Site(tmp_path)
    made.library.mkdir()
    return made


def test_the_local_backend_has_no_worker_to_run(site: Site):
    result = site.cli("worker")
    assert result.exit_code == 1
    assert result.stderr == ('anon-plugin: [queue] backend is local: the daemon runs its own workers; set backend = '
                             '"celery" (with broker_url and a PostgreSQL database_url) to run workers on other '
                             "machines\n")


@pytest.mark.skipif(torch.cuda.device_count() > 3, reason="this machine has a cuda:3")
def test_a_device_this_machine_lacks_is_refused(site: Site):
    result = site.cli("worker", "--device", "cuda:3")
    assert result.exit_code == 2
    assert result.stderr == (f"anon-plugin: --device cuda:3: 'cuda:3' asked for, but torch sees "
                             f"{torch.cuda.device_count()} CUDA device(s)\n")
    assert site.cli("worker", "--device", "gpu").stderr == (
        "anon-plugin: --device gpu: unknown device 'gpu'; choose from auto, cpu, cuda, cuda:N\n")


def test_the_celery_backend_on_sqlite_is_refused_before_anything_starts(site: Site):
    site.env["ANON_QUEUE_BACKEND"] = "celery"
    result = site.cli("worker", "--device", "cpu")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("anon-plugin: ANON_QUEUE_BACKEND: the celery backend needs database_url on "
                                    "PostgreSQL")
