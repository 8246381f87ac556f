"""Which files are photos: one list, for the decoder, the library walk and the CLI alike.

Videos are named too, so that a shared album can say which of its files are
not published and why (videos are not anonymized yet).
"""

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".mts", ".m2ts", ".mpg", ".mpeg", ".wmv")
