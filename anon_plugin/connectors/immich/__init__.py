"""The Immich connector: albums of an owner's Immich as sources, a public Immich user's albums as the target."""

from .client import Album, Asset, ImmichClient, Retry, SharedLink, Upload, read_key

__all__ = ["Album", "Asset", "ImmichClient", "Retry", "SharedLink", "Upload", "read_key"]
