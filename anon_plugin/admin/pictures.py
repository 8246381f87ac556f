"""The pictures the panel shows: originals and public copies scaled for a page, faces with their
boxes drawn, and the live preview of a policy that is not saved yet.

Every picture is decoded and encoded again (no metadata is carried over), so
a browser gets a JPEG or PNG whatever the file is (HEIC, TIFF, CMYK) and an
original's GPS never reaches a page.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..imageio import png_bytes, read_picture

MAX_SIDE = 1600  # what a page needs; a 24-megapixel original is not sent whole
PREVIEW_SIDE = 512
_LABEL = 22


def _scaled(rgb: np.ndarray, max_side: int) -> tuple[Image.Image, float]:
    image = Image.fromarray(rgb)
    scale = min(1.0, max_side / max(image.size))
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    return image, scale


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def photo_jpeg(path: Path, max_side: int = MAX_SIDE) -> bytes:
    """The photo at ``path`` (a path from the store, never from a request), upright, as a JPEG."""
    image, _ = _scaled(read_picture(path).rgb, max_side)
    return _jpeg(image)


def faces_jpeg(path: Path, faces: Sequence[tuple[Sequence[float], bool]], max_side: int = MAX_SIDE) -> bytes:
    """The photo with each face's box drawn and numbered (``faces``: (box x0 y0 x1 y1, covered));
    green: anonymized, red: covered by pixelation."""
    image, scale = _scaled(read_picture(path).rgb, max_side)
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    for index, (box, covered) in enumerate(faces):
        x0, y0, x1, y1 = (v * scale for v in box)
        colour = (220, 40, 40) if covered else (40, 200, 80)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        draw.rectangle((x0, max(0, y0 - 14), x0 + 14, max(14, y0)), fill=colour)
        draw.text((x0 + 3, max(0, y0 - 13)), str(index), fill=(255, 255, 255))
    return _jpeg(image)


@functools.cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=14)
    except (TypeError, ImportError, OSError):  # a Pillow without FreeType has only the small bitmap font
        return ImageFont.load_default()


def _labelled(image: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (image.width, image.height + _LABEL), (24, 24, 24))
    ImageDraw.Draw(out).text((6, 3), text, fill=(235, 235, 235), font=_font())
    out.paste(image, (0, _LABEL))
    return out


def _side_by_side(original: np.ndarray, result: np.ndarray, width: int) -> np.ndarray:
    """The whole photo before and after, each ``width // 2`` wide, labelled."""
    half = width // 2
    tiles = []
    for rgb, label in ((original, "original"), (result, "result")):
        image, _ = _scaled(rgb, max(1, round(half * max(rgb.shape[:2]) / rgb.shape[1])))
        tile = Image.new("RGB", (half, image.height), (24, 24, 24))
        tile.paste(image, ((half - image.width) // 2, 0))
        tiles.append(_labelled(tile, label))
    height = max(t.height for t in tiles)
    strip = Image.new("RGB", (half * 2, height), (24, 24, 24))
    for i, tile in enumerate(tiles):
        strip.paste(tile, (i * half, 0))
    return np.asarray(strip)


@functools.lru_cache(maxsize=8)
def _preview(path: str, size: int, mtime_ns: int, options: tuple[tuple[str, Any], ...], device: str) -> bytes:
    from ..inference.batch import anonymize_batch
    from ..inference.explain import explain_picture
    from ..policies import DEFAULT, engine_config

    picture = read_picture(path)
    config = engine_config(DEFAULT.with_changes(**dict(options)), picture.sha256)  # what the daemon would publish
    (result,) = anonymize_batch([picture.rgb], [config], device, 1)  # takes its turn with the workers' batches
    explain = explain_picture(result.faces, result.image)
    strip = _side_by_side(picture.rgb, result.image, explain.shape[1])
    return png_bytes(np.vstack([strip, explain]))


def preview_png(path: Path, options: dict[str, Any], device: str) -> bytes:
    """The photo at ``path`` under engine ``options`` (a policy's ``engine_options()``, saved or not):
    the whole photo before and after, then per face aligned crop | ID attention map | mask | result.
    Rendered with the seed the daemon would use, so it shows what would be published."""
    st = path.stat()
    return _preview(str(path), st.st_size, st.st_mtime_ns, tuple(sorted(options.items())), device)
