"""What the command tests share: a clean environment (the site they run on is ``cli_site.Site``)."""

from __future__ import annotations

import os

import pytest

from anon_plugin.config import NOT_SETTINGS


@pytest.fixture(autouse=True)
def clean_env(monkeypatch) -> None:
    """No ANON_* setting of the caller's environment leaks into the commands."""
    for name in list(os.environ):
        if name.startswith("ANON_") and name not in NOT_SETTINGS:
            monkeypatch.delenv(name)
    monkeypatch.delenv("ANON_CONFIG", raising=False)
