"""Which files are photos: one list, for the decoder, the library walk and the CLI alike.

Videos are named too, so that a shared album can say which of its files are
not published and why (videos are not anonymized yet).
"""

from pathlib import PurePosixPath

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".mts", ".m2ts", ".mpg", ".mpeg", ".wmv")
VIDEO_REASON = "video: videos are not anonymized yet"


def not_a_photo(name: str) -> str | None:
    """Why the file called ``name`` is not a photo, by its extension (any case); None when it is one."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return None
    if suffix in VIDEO_SUFFIXES:
        return VIDEO_REASON
    return f"not a photo ({suffix})" if suffix else "not a photo (no extension)"
