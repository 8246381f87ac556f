"""Reading and writing photos: upright in, same kind out, typed one-line errors."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFilter

from anon_plugin import imageio
from anon_plugin.errors import InputError
from anon_plugin.imageio import encode, read_picture

PHOTO = "000486.jpg"  # 403x500, one frontal face


@pytest.fixture(scope="module")
def photo(wild_photos: list[Path]) -> Path:
    found = [p for p in wild_photos if p.name == PHOTO]
    assert found, f"{PHOTO} missing from the wild photos"
    return found[0]


@pytest.fixture(scope="module")
def upright(photo: Path) -> Image.Image:
    return Image.open(photo).convert("RGB")


def header_only_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height RGB pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("orientation", "stored"), [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)],
                         ids=["orientation-6", "orientation-8"])
def test_exif_orientation_is_applied(tmp_path, upright, orientation, stored):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "Cam"
    upright.transpose(stored).save(path, quality=95, exif=exif)

    picture = read_picture(path)
    encoded = encode(picture, picture.rgb, "keep")

    assert picture.rgb.shape == (upright.height, upright.width, 3)
    assert np.abs(picture.rgb.astype(int) - np.asarray(upright, int)).mean() < 4
    kept = Image.open(io.BytesIO(encoded.data)).getexif()
    assert ExifTags.Base.Orientation not in kept and kept[ExifTags.Base.Make] == "Cam"
    assert "Orientation" in encoded.removed


def test_orientation_that_fails_is_read_as_stored_with_a_warning(tmp_path, upright, monkeypatch, caplog):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)

    def broken(image):  # Pillow failing on a tag it cannot apply
        raise ValueError("bad orientation")

    monkeypatch.setattr(imageio.ImageOps, "exif_transpose", broken)
    with caplog.at_level("WARNING", logger="anon_plugin.imageio"):
        picture = read_picture(path)

    assert picture.rgb.shape == (upright.width, upright.height, 3)  # the pixels as stored
    (record,) = caplog.records
    assert record.levelname == "WARNING" and str(path) in record.getMessage()
    assert "bad orientation" in record.getMessage()


@pytest.mark.parametrize(("mode", "fmt", "gray", "alpha"), [
    ("L", "PNG", True, False), ("I;16", "PNG", True, False), ("P", "PNG", False, False),
    ("RGBA", "PNG", False, True), ("LA", "PNG", True, True), ("CMYK", "JPEG", False, False),
    ("RGBA", "WEBP", False, True), ("RGBA", "TIFF", False, True),
])
def test_modes_are_converted_and_given_back(tmp_path, upright, mode, fmt, gray, alpha):
    if mode == "I;16":
        im = Image.fromarray(np.asarray(upright.convert("L")).astype(np.uint16) * 257)
        assert im.mode == "I;16"
    elif mode == "P":
        im = upright.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        im = upright.convert(mode)
    if alpha:
        a = np.tile(np.linspace(40, 255, im.width).astype(np.uint8), (im.height, 1))
        im.putalpha(Image.fromarray(a))
    path = tmp_path / f"in.{fmt.lower()}"
    im.save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))

    picture = read_picture(path)
    encoded = encode(picture, picture.rgb)
    out = Image.open(io.BytesIO(encoded.data))

    assert picture.rgb.dtype == np.uint8 and picture.rgb.shape == (im.height, im.width, 3)
    assert (out.format, out.size, encoded.format) == (fmt, im.size, fmt)
    assert picture.gray == gray and (out.mode in ("L", "LA")) == gray
    assert out.mode == {"I;16": "L", "CMYK": "CMYK", "P": "P"}.get(mode, out.mode)  # palette and CMYK kept
    if alpha:
        assert np.array_equal(np.asarray(out)[..., -1], np.asarray(Image.open(path))[..., -1])
    if mode == "I;16":
        assert np.array_equal(np.asarray(out), np.asarray(upright.convert("L")))
        assert encoded.notes == ("16-bit PNG written as 8-bit",)
    else:
        assert encoded.notes == ()


def test_mpo_is_written_as_one_jpeg_at_its_quality(tmp_path, upright):
    path = tmp_path / "camera.jpg"
    upright.save(path, "MPO", save_all=True, append_images=[upright.resize((160, 200))], quality=90)
    assert Image.open(path).format == "MPO"

    picture = read_picture(path)
    data = encode(picture, picture.rgb).data

    out = Image.open(io.BytesIO(data))
    assert out.format == "JPEG" and data.count(b"\xff\xd8") == 1  # the second frame is gone
    assert out.quantization == Image.open(path).quantization


# --- formats, faithfully ------------------------------------------------------------------------

BOX = (slice(60, 200), slice(100, 220))  # rows, columns: where the "face" changes


def changed_face(rgb: np.ndarray, fill: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in for anonymization: BOX blurred (or filled with ``fill``); and the bool mask outside it."""
    out = rgb.copy()
    if fill is None:
        out[BOX] = np.asarray(Image.fromarray(rgb[BOX]).filter(ImageFilter.GaussianBlur(6)))
    else:
        out[BOX] = fill
    outside = np.ones(rgb.shape[:2], bool)
    outside[BOX] = False
    return out, outside


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_lossless_webp_is_written_lossless(tmp_path, upright):
    path = tmp_path / "in.webp"
    upright.save(path, lossless=True)
    picture = read_picture(path)
    rgb, outside = changed_face(picture.rgb)

    data = encode(picture, rgb).data

    assert data[12:16] == b"VP8L"
    assert np.array_equal(decoded(data), rgb)  # the new face as drawn, and not one pixel outside it changed
    upright.save(path, quality=80)
    assert encode(read_picture(path), rgb).data[12:16] == b"VP8 "  # a lossy input stays lossy


@pytest.mark.parametrize("transparent", [False, True], ids=["opaque", "transparent-entry"])
def test_palette_png_stays_palette_where_the_fill_allows(tmp_path, upright, transparent):
    path = tmp_path / "in.png"
    upright.convert("P", palette=Image.Palette.ADAPTIVE).save(path, **({"transparency": 0} if transparent else {}))
    picture = read_picture(path)
    blurred, outside = changed_face(picture.rgb)

    encoded = encode(picture, blurred)
    out = Image.open(io.BytesIO(encoded.data))

    assert out.mode == "P" and encoded.notes == ()
    assert np.array_equal(np.asarray(out.convert("RGB"))[outside], picture.rgb[outside])
    assert np.abs(np.asarray(out.convert("RGB"), int) - blurred).max(axis=2)[~outside].mean() < 8
    if transparent:
        alpha = np.asarray(Image.open(path).convert("RGBA"))[..., 3]
        assert np.array_equal(np.asarray(out.convert("RGBA"))[..., 3], alpha)

    green, outside = changed_face(picture.rgb, fill=(0, 255, 0))
    encoded = encode(picture, green)
    out = Image.open(io.BytesIO(encoded.data))
    assert out.mode == ("RGBA" if transparent else "RGB")
    assert encoded.notes == ("palette PNG written as RGB: the new face needs colours the palette lacks",)
    assert np.array_equal(np.asarray(out.convert("RGB")), green)


def rgb16_png(rgb16: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    h, w = rgb16.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb16)
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_16_bit_inputs_are_written_as_8_bit_with_a_note(tmp_path, upright):
    small = upright.resize((60, 80))
    (tmp_path / "rgb16.png").write_bytes(rgb16_png(np.asarray(small).astype(np.uint16) * 257))
    Image.fromarray(np.asarray(small.convert("L")).astype(np.uint16) * 257).save(tmp_path / "gray16.tif")
    for name, fmt in (("rgb16.png", "PNG"), ("gray16.tif", "TIFF")):
        picture = read_picture(tmp_path / name)
        encoded = encode(picture, picture.rgb)
        assert encoded.notes == (f"16-bit {fmt} written as 8-bit",), name
        assert Image.open(io.BytesIO(encoded.data)).mode in ("RGB", "L")
        reference = small if name == "rgb16.png" else small.convert("L").convert("RGB")
        assert np.array_equal(decoded(encoded.data), np.asarray(reference)), name


def test_cmyk_jpeg_stays_cmyk(tmp_path, upright):
    path = tmp_path / "cmyk.jpg"
    upright.convert("CMYK").save(path, quality=95)
    picture = read_picture(path)
    rgb, outside = changed_face(picture.rgb)

    out = Image.open(io.BytesIO(encode(picture, rgb).data))

    assert out.mode == "CMYK" and out.format == "JPEG"
    before = np.asarray(Image.open(path), int)
    assert np.abs(np.asarray(out, int) - before)[outside].mean() < 1.5  # the input's own ink, re-encoded
    assert np.abs(np.asarray(out.convert("RGB"), int) - rgb)[~outside].mean() < 3  # the new face, in CMYK


@pytest.mark.parametrize(("suffix", "reason"), [
    ("gif", "animated image (2 frames): held back, animation is not supported"),
    ("webp", "animated image (2 frames): held back, animation is not supported"),
    ("png", "animated image (2 frames): held back, animation is not supported"),
    ("tif", "multi-page TIFF (2 pages): held back, multi-page TIFF is not supported"),
])
def test_animations_and_pages_are_refused_not_cut(tmp_path, upright, suffix, reason):
    path = tmp_path / f"many.{suffix}"
    small = upright.resize((40, 50))
    small.save(path, save_all=True, append_images=[small.rotate(10)])
    with pytest.raises(InputError) as refused:
        read_picture(path)
    assert str(refused.value) == reason


def test_heic_round_trip(tmp_path, upright):
    from pillow_heif import register_heif_opener

    register_heif_opener()
    path = tmp_path / "phone.heic"
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    upright.save(path, quality=90, exif=exif)
    picture = read_picture(path)
    assert (picture.format, picture.rgb.shape) == ("HEIF", (upright.height, upright.width, 3))

    same = encode(picture, picture.rgb, "strip-identifying")
    jpeg = encode(picture, picture.rgb, output_format="jpeg", jpeg_quality=92)

    assert (same.format, Image.open(io.BytesIO(same.data)).format) == ("HEIF", "HEIF")
    assert Image.open(io.BytesIO(same.data)).getexif()[ExifTags.Base.Make] == "Apple"
    assert (jpeg.format, Image.open(io.BytesIO(jpeg.data)).format) == ("JPEG", "JPEG")
    assert not Image.open(io.BytesIO(jpeg.data)).getexif() and jpeg.removed == ("Make",)
    for encoded in (same, jpeg):
        assert np.abs(decoded(encoded.data).astype(int) - picture.rgb).mean() < 3


def test_jpeg_output_flattens_transparency_with_a_note(tmp_path, upright):
    rgba = upright.copy()
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, upright.width).astype(np.uint8), (upright.height, 1))))
    rgba.save(tmp_path / "cut-out.png")
    picture = read_picture(tmp_path / "cut-out.png")
    encoded = encode(picture, picture.rgb, output_format="jpeg")
    assert encoded.format == "JPEG" and encoded.notes == ("transparency flattened onto white: JPEG has none",)
    assert decoded(encoded.data)[:, 0].min() > 240  # fully transparent column: white
    with pytest.raises(ValueError, match="same, jpeg"):
        encode(picture, picture.rgb, output_format="png")


def test_pixel_limit(tmp_path, photo):
    with pytest.raises(InputError, match="over the limit of 1,000"):
        read_picture(photo, max_pixels=1000)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(header_only_png(50_000, 50_000))
    with pytest.raises(InputError) as bombed:
        read_picture(bomb)
    assert "\n" not in str(bombed.value) and "pixel" in str(bombed.value)


def test_pixel_limit_is_ours_not_pillows(tmp_path):
    """95 Mpx is over Pillow's 89 Mpx warning level: the refusal must come from max_pixels."""
    big = tmp_path / "big.png"
    big.write_bytes(header_only_png(10_000, 9_500))
    with pytest.raises(InputError, match="over the limit of 94,000,000"):
        read_picture(big, max_pixels=94_000_000)


def test_bad_inputs_raise_one_line_input_errors(tmp_path, photo):
    data = photo.read_bytes()
    cases = {
        "missing.jpg": None,
        "truncated.jpg": data[: len(data) // 2],
        "text.jpg": b"not a photo\nat all\n",
        "empty.jpg": b"",
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    (tmp_path / "folder.jpg").mkdir()
    for name in [*cases, "folder.jpg"]:
        with pytest.raises(InputError) as caught:
            read_picture(tmp_path / name)
        assert str(caught.value) and "\n" not in str(caught.value), name

