"""anon_plugin: a privacy plugin for self-hosted photo servers, and its face anonymization engine.

The API is small: ``Anonymizer(...).anonymize(image) -> Result``. Heavy
modules (torch, OpenCV, dlib) load on first use, not at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.2.0"
__all__ = ["Anonymizer", "AnonymizerConfig", "FaceRecord", "Result", "__version__"]

if TYPE_CHECKING:
    from .inference.pipeline import Anonymizer, AnonymizerConfig, FaceRecord, Result


def __getattr__(name: str):
    if name in __all__:
        from .inference import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'anon_plugin' has no attribute {name!r}")
