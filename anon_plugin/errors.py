"""Typed exceptions. The library raises them; only the CLI prints and exits."""


class AnonPluginError(Exception):
    """Base class: its message is one line, meant for users."""


class InputError(AnonPluginError):
    """An input cannot be read as an image (missing, truncated, not an image, too large)."""


class OutputError(AnonPluginError):
    """An output cannot be written (exists without --overwrite, collides, disk error)."""


class ModelError(AnonPluginError):
    """A model file is missing or its weights cannot be built."""


class StageError(AnonPluginError):
    """A pipeline stage failed for one face; the face is then covered (fail closed)."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
