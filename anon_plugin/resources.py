"""Folders that live at the top of the checkout and ship inside the package.

``models/``, ``migrations/`` and ``examples/`` are top-level folders (the
user's layout); ``pip install .`` installs them as ``anon_plugin.models``,
``anon_plugin.migrations`` and ``anon_plugin.examples`` (pyproject's
package-dir). A source checkout or an editable install has no such
packages, so the checkout's own folder is used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def shipped_dir(folder: str, marker: str) -> Path | None:
    """The installed ``anon_plugin.<folder>`` or the checkout's ``<folder>/``, whichever holds ``marker``."""
    try:
        found = importlib.util.find_spec(f"anon_plugin.{folder}")
    except ModuleNotFoundError:
        found = None
    locations = found.submodule_search_locations if found else None
    candidates = [Path(p) for p in locations] if locations else []
    for candidate in [*candidates, CHECKOUT / folder]:
        if (candidate / marker).is_file():
            return candidate
    return None
