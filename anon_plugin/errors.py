"""Typed exceptions. The library raises them; only the CLI prints and exits."""


class AnonPluginError(Exception):
    """Base class: its message is one line, meant for users."""


class InputError(AnonPluginError):
    """An input cannot be read as an image (missing, truncated, not an image, too large)."""


class UnreadableError(InputError):
    """The file could not be read just now (gone, no permission, an I/O error of a network share): unlike
    an image that is not one, reading it again later may succeed."""


class OutputError(AnonPluginError):
    """An output cannot be written (exists, collides, disk error)."""


class OutputExistsError(OutputError):
    """The output exists and the caller did not ask to replace it."""

    def __init__(self, path: object):
        super().__init__(f"{path} exists")
        self.path = path


class ModelError(AnonPluginError):
    """A model file is missing or its weights cannot be built."""


class StageError(AnonPluginError):
    """A pipeline stage failed for one face; the face is then covered (fail closed)."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


class SettingsError(AnonPluginError):
    """The settings file or an ANON_* variable is wrong; the message names the key and where it came from."""


class PolicyError(AnonPluginError):
    """An album policy has an unknown field or a bad value; the message names the field and what it accepts."""


class StoreError(AnonPluginError):
    """The database cannot be used: unreachable, unreadable, or its schema is not the one this code expects."""


class AlbumError(AnonPluginError):
    """An album named by the admin does not exist, is ambiguous, or cannot do what was asked."""


class WorkerError(AnonPluginError):
    """A celery worker cannot serve here: the queue is not the celery one, or it cannot see the library roots or
    write the public root at the configured paths."""


class ImmichError(AnonPluginError):
    """An Immich server refused a call or answered what we cannot use; the message names the call, never a key."""


class ImmichPermissionError(ImmichError):
    """401 or 403: the key is not accepted, or lacks the permission the call needs (named in the message)."""

    def __init__(self, message: str, permission: str):
        super().__init__(message)
        self.permission = permission


class ImmichUnavailable(ImmichError):
    """The server could not be reached, or kept answering 5xx, through every retry: trying later may succeed."""


class ImmichKeyError(ImmichError):
    """An Immich key file cannot be used: missing, empty, or readable by others than its owner."""
