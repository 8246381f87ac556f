"""Reading and writing photos: upright RGB in, same format and size out, metadata dropped.

Inside anon_plugin an image is RGB uint8 (H, W, 3). Whatever the file holds
(grayscale, palette, RGBA, 16-bit, CMYK) is converted on the way in and, as
far as the format allows, given back its kind on the way out.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from .errors import InputError, OutputError

SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 100_000_000
_GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass(frozen=True)
class Picture:
    """A decoded photo and what is needed to write its anonymized version alike."""

    rgb: np.ndarray  # upright RGB uint8 (H, W, 3)
    format: str  # PIL format name: JPEG, PNG, ...
    gray: bool = False
    alpha: np.ndarray | None = None  # uint8 (H, W) when the input had transparency
    save_options: dict = field(default_factory=dict)  # encoder settings matching the input
    metadata: dict = field(default_factory=dict)  # written only with keep_metadata


def _to_8bit(im: Image.Image) -> Image.Image:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(im, dtype=np.float64)
        a = a / 257.0 if a.max(initial=0) > 255 else a
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
    return im


def _save_options(im: Image.Image) -> dict:
    if im.format in ("JPEG", "MPO"):
        options: dict = {"quality": 95}
        if getattr(im, "quantization", None):
            # Re-encode with the input's own tables: same quality, no surprise growth.
            options = {"qtables": im.quantization}
        sampling = JpegImagePlugin.get_sampling(im)
        if sampling != -1:
            options["subsampling"] = sampling
        return options
    if im.format == "WEBP":
        return {"lossless": True} if im.info.get("lossless") else {"quality": 95}
    if im.format == "TIFF" and im.info.get("compression") in ("tiff_lzw", "tiff_adobe_deflate", "raw"):
        return {"compression": im.info["compression"]}
    return {}


def _metadata(im: Image.Image) -> dict:
    meta: dict = {}
    exif = im.getexif()
    if exif:
        exif.pop(0x0112, None)  # orientation: the pixels are written upright
        exif.pop(0x0201, None)  # a JPEG thumbnail offset would point at the original face
        exif.pop(0x0202, None)
        meta["exif"] = exif
    for key in ("xmp", "comment"):
        if im.info.get(key):
            meta[key] = im.info[key]
    return meta


def read_picture(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode ``path``; raises InputError with a one-line reason on any bad input."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Our own --max-pixels check below decides, not Pillow's lower default.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
            w, h = im.size
            if w * h > max_pixels:
                raise InputError(f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}")
            im.load()
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError("no such file") from None
    except IsADirectoryError:
        raise InputError("is a folder, not an image") from None
    except PermissionError:
        raise InputError("permission denied") from None
    except UnidentifiedImageError:
        raise InputError("not an image (or a format anon-plugin cannot read)") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"over the pixel limit ({exc})".splitlines()[0]) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"truncated or corrupt image ({exc})".splitlines()[0]) from None
    # An MPO's extra frames (previews, often of the same face) are not written back.
    fmt, options = {"MPO": "JPEG"}.get(im.format, im.format or "PNG"), _save_options(im)
    icc = im.info.get("icc_profile")
    try:
        upright = ImageOps.exif_transpose(im)
    except Exception:  # a broken orientation tag: keep the pixels as stored
        upright = im
    # From the upright copy: _metadata drops the orientation tag that exif_transpose needs.
    metadata = _metadata(upright)
    if icc:
        options["icc_profile"] = icc  # colour, not identity: always kept
    gray = upright.mode in _GRAY_MODES or upright.mode == "LA"
    alpha = None
    if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
        upright = upright.convert("RGBA")
        alpha = np.asarray(upright)[..., 3].copy()
    rgb = np.asarray(_to_8bit(upright).convert("RGB")).copy()
    return Picture(rgb, fmt, gray, alpha, options, metadata)


def load_rgb(image: str | Path | np.ndarray | Image.Image) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from a path, a PIL image or an array (returned as is)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"expected an RGB uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
        return image
    if isinstance(image, Image.Image):
        return np.asarray(_to_8bit(ImageOps.exif_transpose(image)).convert("RGB")).copy()
    return read_picture(image).rgb


def encode(picture: Picture, rgb: np.ndarray, keep_metadata: bool = False) -> bytes:
    """The anonymized ``rgb`` encoded like ``picture``'s file."""
    im = Image.fromarray(rgb, "RGB")
    if picture.gray:
        im = im.convert("L")
    if picture.alpha is not None and picture.format != "JPEG":
        im.putalpha(Image.fromarray(picture.alpha, "L"))
    options = dict(picture.save_options)
    if keep_metadata:
        options.update(picture.metadata)
    buffer = io.BytesIO()
    im.save(buffer, format=picture.format, **options)
    return buffer.getvalue()


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _new_file_mode() -> int:
    """The mode open() gives a new file: 0o666 less the umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half a file."""
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists (use --overwrite)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, _new_file_mode())  # mkstemp's 0600 would hide the photo from other users
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
