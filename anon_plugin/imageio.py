"""Decoding and encoding photos: upright RGB in, same format and size out, metadata per mode.

Inside anon_plugin an image is RGB uint8 (H, W, 3). Whatever the file holds
(grayscale, palette, RGBA, 16-bit, CMYK) is converted on the way in and, as
far as the format allows, given back its kind on the way out: a palette stays
a palette, CMYK stays CMYK, a lossless WebP stays lossless, and the pixels the
anonymization did not change keep their exact values there. What cannot be
given back is said in the result's notes. Animations and multi-page files are
refused, never cut to their first frame.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, UnidentifiedImageError

from .errors import InputError, OutputError, UnreadableError
from .metadata import Found, Mode, Stripped, found_in, strip, webp_is_lossless

OutputFormat = Literal["same", "jpeg"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("same", "jpeg")
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_JPEG_QUALITY = 90  # for JPEGs made from other formats; a JPEG input keeps its own tables
HEIF_QUALITY = 90
PALETTE_TOLERANCE = 8.0  # mean max-channel error allowed where the new face is mapped onto the old palette
_GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_EXIF_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "HEIF")
log = logging.getLogger("anon_plugin.imageio")


@dataclass(frozen=True)
class Palette:
    """A palette image's colours, to write the result back as a palette."""

    colors: np.ndarray  # uint8 (N, 3)
    alpha: np.ndarray  # uint8 (N,): each entry's opacity (255 without transparency)
    transparency: int | bytes | None  # as the file gave it, written back alike


@dataclass(frozen=True)
class Picture:
    """A decoded photo and what is needed to write its anonymized version alike."""

    rgb: np.ndarray  # upright RGB uint8 (H, W, 3)
    format: str  # PIL format name: JPEG, PNG, WEBP, TIFF, BMP, HEIF, ...
    gray: bool = False
    alpha: np.ndarray | None = None  # uint8 (H, W) when the input had transparency
    save_options: dict = field(default_factory=dict)  # encoder settings matching the input
    metadata: Found = field(default_factory=Found)  # as found; what is written depends on the mode
    palette: Palette | None = None
    cmyk: np.ndarray | None = None  # uint8 (H, W, 4): a CMYK input's own values
    notes: tuple[str, ...] = ()  # what reading could not keep (e.g. "16-bit PNG written as 8-bit")
    sha256: str = ""  # of the file's bytes, exactly those decoded here (provenance names the source by it)
    size: int = 0  # of the file's bytes


@dataclass(frozen=True)
class Encoded:
    """An encoded output and what its metadata lost, for the report and provenance."""

    data: bytes
    format: str  # PIL format name of ``data``
    removed: tuple[str, ...]  # metadata names left out (GPSInfo, MakerNote, XMP, Thumbnail, ...)
    notes: tuple[str, ...]  # format and metadata notes (16-bit written as 8-bit, malformed EXIF removed...)


@functools.cache
def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()


def _to_8bit(im: Image.Image) -> Image.Image:
    if im.mode.startswith("I;16"):
        a = np.asarray(im, dtype=np.float64) / 257.0
    elif im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        a = a / 257.0 if a.max(initial=0) > 255 else a
    else:
        return im
    return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")


def _save_options(im: Image.Image, data: bytes) -> dict:
    if im.format in ("JPEG", "MPO"):
        options: dict = {"quality": 95}
        if qtables := getattr(im, "quantization", None):
            # Re-encode with the input's own tables: same quality, no surprise growth.
            options = {"qtables": qtables}
        sampling = JpegImagePlugin.get_sampling(im)
        if sampling != -1:
            options["subsampling"] = sampling
        return options
    if im.format == "WEBP":
        # exact: keep the colour under fully transparent pixels too.
        return {"lossless": True, "exact": True} if webp_is_lossless(data) else {"quality": 95}
    if im.format == "TIFF" and im.info.get("compression") in ("tiff_lzw", "tiff_adobe_deflate", "raw"):
        return {"compression": im.info["compression"]}
    if im.format == "HEIF":
        return {"quality": HEIF_QUALITY}
    return {}


def _bit_depth(im: Image.Image, data: bytes) -> int:
    if im.format == "PNG" and data[12:16] == b"IHDR":
        return data[24]
    if im.format == "TIFF" and isinstance(im, TiffImagePlugin.TiffImageFile):
        bits = im.tag_v2.get(258, 8)
        return max(bits) if isinstance(bits, tuple) else int(bits)
    if im.format == "HEIF":
        return int(im.info.get("bit_depth") or 8)
    return 8


def _refuse_frames(im: Image.Image) -> None:
    frames = getattr(im, "n_frames", 1)
    if frames <= 1 or im.format == "MPO":  # an MPO's extra frames are previews: the first is the photo
        return
    if im.format == "TIFF":
        raise InputError(f"multi-page TIFF ({frames} pages): held back, multi-page TIFF is not supported")
    if im.format == "HEIF":
        raise InputError(f"HEIF with {frames} images: held back, image collections are not supported")
    raise InputError(f"animated image ({frames} frames): held back, animation is not supported")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except IsADirectoryError:
        raise InputError("is a folder, not an image") from None
    except FileNotFoundError:
        raise UnreadableError("no such file") from None
    except PermissionError:
        raise UnreadableError("permission denied") from None
    except OSError as exc:
        raise UnreadableError(f"cannot read: {exc.strerror or exc}") from None


def _open(path: Path, max_pixels: int) -> tuple[Image.Image, bytes]:
    data = _read(path)
    try:
        with warnings.catch_warnings():
            # Our own --max-pixels check below decides, not Pillow's lower default; Pillow's
            # "Corrupt EXIF data" warnings are moot: EXIF that cannot be parsed is never written.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise InputError(f"{w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}")
            _refuse_frames(im)
            im.load()
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError("not an image (or a format anon-plugin cannot read)") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"over the pixel limit ({exc})".splitlines()[0]) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"truncated or corrupt image ({exc})".splitlines()[0]) from None
    return im, data


def _palette(im: Image.Image) -> Palette:
    colors = np.frombuffer(bytes(im.getpalette("RGB") or b""), np.uint8).reshape(-1, 3)
    alpha = np.full(len(colors), 255, np.uint8)
    transparency = im.info.get("transparency")
    if isinstance(transparency, bytes):
        alpha[: len(transparency)] = np.frombuffer(transparency[: len(colors)], np.uint8)
    elif isinstance(transparency, int) and transparency < len(colors):
        alpha[transparency] = 0
    return Palette(colors, alpha, transparency if isinstance(transparency, (int, bytes)) else None)


def read_picture(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Decode ``path``; raises InputError with a one-line reason on any bad input.

    HEIC/HEIF is read through pillow-heif, registered at the first read.
    """
    _register_heif()
    im, data = _open(Path(path), max_pixels)
    # An MPO's extra frames (previews, often of the same face) are not written back.
    fmt = im.format or "PNG"
    fmt, options = {"MPO": "JPEG"}.get(fmt, fmt), _save_options(im, data)
    found = found_in(im, data)
    bits = _bit_depth(im, data)
    notes = (f"{bits}-bit {fmt} written as 8-bit",) if bits > 8 else ()
    icc = im.info.get("icc_profile")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": such EXIF is removed whole on writing
            upright = ImageOps.exif_transpose(im)
    except Exception as exc:  # a broken orientation tag: keep the pixels as stored
        log.warning("%s: its EXIF orientation cannot be applied (%s: %s); read as stored", path,
                    type(exc).__name__, exc)
        upright = im
    if icc:
        options["icc_profile"] = icc  # colour, not identity: always kept
    gray = upright.mode in _GRAY_MODES or upright.mode == "LA"
    palette = _palette(upright) if upright.mode == "P" else None
    cmyk = np.asarray(upright).copy() if upright.mode == "CMYK" else None
    alpha = None
    if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
        upright = upright.convert("RGBA")
        alpha = np.asarray(upright)[..., 3].copy()
    rgb = np.asarray(_to_8bit(upright).convert("RGB")).copy()
    return Picture(rgb, fmt, gray, alpha, options, found, palette, cmyk, notes,
                   hashlib.sha256(data).hexdigest(), len(data))


def load_rgb(image: str | Path | np.ndarray | Image.Image) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from a path, a PIL image or an array (returned as is)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"expected an RGB uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
        return image
    if isinstance(image, Image.Image):
        return np.asarray(_to_8bit(ImageOps.exif_transpose(image)).convert("RGB")).copy()
    return read_picture(image).rgb


def encode(
    picture: Picture,
    rgb: np.ndarray,
    metadata: Mode = "strip-all",
    *,
    output_format: OutputFormat = "same",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> Encoded:
    """The anonymized ``rgb`` (RGB uint8, the size of ``picture.rgb``) encoded like ``picture``'s file.

    ``metadata``: ``strip-all``, ``strip-identifying`` or ``keep`` (see anon_plugin.metadata).
    ``output_format``: ``same`` as the input, or ``jpeg``; ``jpeg_quality`` applies to a
    JPEG made from another format (a JPEG input keeps its own quantization tables).
    Raises OutputError when the encoder refuses.
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output format {output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    fmt = picture.format if output_format == "same" else "JPEG"
    im, notes = _image(picture, rgb, fmt)
    if fmt == picture.format:
        options = dict(picture.save_options)
    else:
        options = {k: v for k, v in picture.save_options.items() if k == "icc_profile"}
        options["quality"] = jpeg_quality
    stripped = strip(picture.metadata, metadata, im.size)
    options |= _metadata_options(fmt, stripped)
    if fmt == "HEIF":
        _register_heif()
    buffer = io.BytesIO()
    try:
        im.save(buffer, format=fmt, **options)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot encode {fmt}: {exc}".splitlines()[0]) from None
    return Encoded(buffer.getvalue(), fmt, stripped.removed, (*picture.notes, *notes, *stripped.notes))


def _image(picture: Picture, rgb: np.ndarray, fmt: str) -> tuple[Image.Image, list[str]]:
    """The PIL image to save: the input's own kind where ``fmt`` can hold it."""
    kept = None if rgb.shape != picture.rgb.shape else np.all(rgb == picture.rgb, axis=2)
    if picture.cmyk is not None and fmt in ("JPEG", "TIFF"):
        return Image.fromarray(_as_cmyk(picture.cmyk, rgb, kept), "CMYK"), []
    notes = []
    if picture.palette is not None and fmt == picture.format:
        im = _as_palette(picture.palette, rgb, picture.alpha, kept)
        if im is not None:
            return im, []
        notes.append(f"palette {fmt} written as RGB: the new face needs colours the palette lacks")
    alpha = picture.alpha
    if alpha is not None and fmt == "JPEG":
        if picture.format != "JPEG":
            notes.append("transparency flattened onto white: JPEG has none")
        a = alpha[..., None].astype(np.float32) / 255
        rgb = np.round(rgb * a + 255 * (1 - a)).astype(np.uint8)
        alpha = None
    im = Image.fromarray(rgb, "RGB")
    if picture.gray:
        im = im.convert("L")
    if alpha is not None:
        im.putalpha(Image.fromarray(alpha, "L"))
    return im, notes


def _as_cmyk(original: np.ndarray, rgb: np.ndarray, kept: np.ndarray | None) -> np.ndarray:
    """The input's CMYK where the pixels were kept; the rest inverted from Pillow's CMYK to RGB."""
    changed = np.ones(rgb.shape[:2], bool) if kept is None else ~kept
    out = original.copy() if kept is not None else np.zeros((*rgb.shape[:2], 4), np.uint8)
    px = rgb[changed].astype(np.float32)
    top = px.max(axis=1, keepdims=True)
    # Pillow reads r = (255 - c) (255 - k) / 255; put the darkness in K, as a printer would.
    cmy = np.where(top > 0, 255 * (top - px) / np.maximum(top, 1), 0)
    out[changed] = np.round(np.concatenate([cmy, 255 - top], axis=1)).astype(np.uint8)
    return out


def _as_palette(palette: Palette, rgb: np.ndarray, alpha: np.ndarray | None,
                kept: np.ndarray | None) -> Image.Image | None:
    """``rgb`` on the input's palette, or None when the kept pixels or the new face would not survive it.

    Kept pixels map to an entry of exactly their colour; new ones to the nearest colour of
    the same opacity, accepted when the mean error stays within PALETTE_TOLERANCE.
    """
    h, w = rgb.shape[:2]
    opacity = np.full((h, w), 255, np.uint8) if alpha is None else alpha
    pixels = _pack(rgb.reshape(-1, 3), opacity.reshape(-1))
    entries = _pack(palette.colors, palette.alpha)
    unique, first = np.unique(entries, return_index=True)
    at = np.minimum(np.searchsorted(unique, pixels), len(unique) - 1)
    exact = unique[at] == pixels
    index = first[at]
    if kept is not None and not exact[kept.reshape(-1)].all():
        return None
    if not exact.all():
        wanted, inverse = np.unique(pixels[~exact], return_inverse=True)
        nearest, error = _nearest(_unpack(wanted), palette)
        if error is None or error[inverse].mean() > PALETTE_TOLERANCE:
            return None
        index[~exact] = nearest[inverse]
    im = Image.fromarray(index.reshape(h, w).astype(np.uint8), "P")
    im.putpalette(palette.colors.tobytes(), "RGB")
    if palette.transparency is not None:
        im.info["transparency"] = palette.transparency
    return im


def _pack(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    c = rgb.astype(np.uint32)
    return (c[:, 0] << 24) | (c[:, 1] << 16) | (c[:, 2] << 8) | alpha.astype(np.uint32)


def _unpack(keys: np.ndarray) -> np.ndarray:
    return np.stack([(keys >> s) & 0xFF for s in (24, 16, 8, 0)], axis=1).astype(np.int32)


def _nearest(wanted: np.ndarray, palette: Palette) -> tuple[np.ndarray, np.ndarray | None]:
    """Per wanted RGBA colour (M, 4): the nearest palette entry of the same opacity and its error."""
    colors, alpha = palette.colors.astype(np.int32), palette.alpha.astype(np.int32)
    best = np.zeros(len(wanted), np.int64)
    error = np.zeros(len(wanted), np.float64)
    for start in range(0, len(wanted), 2048):
        chunk = wanted[start:start + 2048]
        distance = ((chunk[:, None, :3] - colors[None]) ** 2).sum(axis=2)
        distance[chunk[:, None, 3] != alpha[None]] = np.iinfo(np.int32).max
        pick = distance.argmin(axis=1)
        if (chunk[:, 3] != alpha[pick]).any():
            return best, None  # an opacity the palette does not have
        best[start:start + 2048] = pick
        error[start:start + 2048] = np.abs(chunk[:, :3] - colors[pick]).max(axis=1)
    return best, error


def _metadata_options(fmt: str, stripped: Stripped) -> dict:
    options: dict = {}
    if stripped.exif and fmt in _EXIF_FORMATS:
        options["exif"] = stripped.exif
    if stripped.xmp:
        if fmt in ("JPEG", "WEBP", "HEIF"):
            options["xmp"] = stripped.xmp
        elif fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", stripped.xmp.decode("utf-8", "replace"))
            options["pnginfo"] = info
        elif fmt == "TIFF":  # Pillow writes a TIFF's XMP only as tag 700 of the EXIF it is given
            options["exif"] = _with_tiff_xmp(stripped.exif, stripped.xmp)
    if stripped.comment and fmt in ("JPEG", "GIF"):
        options["comment"] = stripped.comment
    return options


def _with_tiff_xmp(exif: bytes | None, xmp: bytes) -> bytes:
    tags = Image.Exif()
    if exif:
        tags.load(exif)
    tags[700] = xmp
    return tags.tobytes()


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()
