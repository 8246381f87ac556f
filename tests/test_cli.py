"""The ``anon-plugin`` command end to end, on real photos and real models.

Most runs use click's CliRunner in-process (models load once); subprocesses
only where the process itself matters (imports, the installed entry point).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import ExifTags, Image, ImageCms

from anon_plugin import __version__, atomic, imageio
from anon_plugin.cli import main
from anon_plugin.commands.anonymize import METADATA_MODES, METHODS, OUTPUT_FORMATS, RECOGNIZERS, STRENGTHS
from anon_plugin.errors import AlbumError, AnonPluginError, OutputExistsError
from anon_plugin.inference.detect import detect_faces

PHOTO = "000486.jpg"  # 403x500, one frontal face
SMALL = "003817.jpg"  # 195x260, one face
TALL = "000825.jpg"  # 630x876; below row 500 there is no face
SUMMARY = re.compile(r"^anon-plugin: (\d+) images, (\d+) faces \((\d+) covered\), (\d+) failed, (\d+) skipped, "
                     r"[\d.]+ s$", re.M)
GPS = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (48.0, 51.0, 24.0),
       ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (2.0, 21.0, 7.0)}
XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="Jane Doe"/></rdf:RDF></x:xmpmeta>'
       b'<?xpacket end="w"?>')
COMMENT = b"taken at Jane's home"


@pytest.fixture(scope="module")
def photos(wild_photos: list[Path]) -> dict[str, Path]:
    by_name = {p.name: p for p in wild_photos}
    missing = {PHOTO, SMALL, TALL} - set(by_name)
    assert not missing, f"wild photos missing: {missing}"
    return by_name


@pytest.fixture(scope="module")
def upright(photos) -> Image.Image:
    return Image.open(photos[PHOTO]).convert("RGB")


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def summary(result: Result) -> tuple[int, int, int, int, int]:
    """(images, faces, covered, failed, skipped) from the summary line on stderr."""
    found = SUMMARY.findall(result.stderr)
    assert len(found) == 1, result.stderr
    return tuple(int(v) for v in found[0])


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def face_area(image: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Bool (H, W): the detected face boxes, grown by ``margin`` of their size on each side."""
    area = np.zeros(image.shape[:2], bool)
    for face in detect_faces(np.ascontiguousarray(image.astype(np.uint8))):
        x0, y0, x1, y1 = face.box
        dx, dy = margin * (x1 - x0), margin * (y1 - y0)
        area[max(0, round(y0 - dy)):round(y1 + dy), max(0, round(x0 - dx)):round(x1 + dx)] = True
    return area


def assert_changed_only_in_face(before: np.ndarray, after: np.ndarray, lossy: bool) -> None:
    """The face box changed visibly; outside it (grown by a quarter) nothing did, up to re-encoding."""
    assert before.shape == after.shape
    diff = np.abs(before - after).max(axis=2)
    face, near_face = face_area(before), face_area(before, 0.25)
    assert face.any(), "no face detected in the input"
    assert (diff[face] > 24).mean() > 0.05, "the face was not anonymized"
    outside = diff[~near_face]
    if lossy:
        assert outside.mean() < 1.5 and np.percentile(outside, 99.9) < 16
    else:
        assert not outside.any(), "pixels away from the face changed"


def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """An EXIF APP1 payload: IFD0 (Make, GPS) then IFD1 holding an embedded JPEG thumbnail.

    Built by hand because Pillow never writes IFD1.
    """

    def ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int) -> bytes:
        body = b"".join(struct.pack("<HHI", tag, kind, count) + value for tag, kind, count, value in entries)
        return struct.pack("<H", len(entries)) + body + struct.pack("<I", next_ifd)

    ascii_, short, long_, rational = 2, 3, 4, 5
    gps_at = 8 + 2 + 2 * 12 + 4
    rationals_at = gps_at + 2 + 2 * 12 + 4
    ifd1_at = rationals_at + 3 * 8
    thumbnail_at = ifd1_at + 2 + 3 * 12 + 4
    tiff = b"II*\0" + struct.pack("<I", 8)
    tiff += ifd([(ExifTags.Base.Make, ascii_, 4, b"Cam\0"),
                 (ExifTags.IFD.GPSInfo, long_, 1, struct.pack("<I", gps_at))], ifd1_at)
    tiff += ifd([(ExifTags.GPS.GPSLatitudeRef, ascii_, 2, b"N\0\0\0"),
                 (ExifTags.GPS.GPSLatitude, rational, 3, struct.pack("<I", rationals_at))], 0)
    tiff += struct.pack("<6I", 48, 1, 51, 1, 24, 1)
    tiff += ifd([(ExifTags.Base.Compression, short, 1, struct.pack("<HH", 6, 0)),
                 (ExifTags.Base.JpegIFOffset, long_, 1, struct.pack("<I", thumbnail_at)),
                 (ExifTags.Base.JpegIFByteCount, long_, 1, struct.pack("<I", len(thumbnail)))], 0)
    return b"Exif\0\0" + tiff + thumbnail


def jpeg_bytes(im: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", **options)
    return buffer.getvalue()


# --- metadata ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, upright) -> tuple[Path, bytes, bytes]:
    """A real face photo carrying GPS, an EXIF thumbnail of the face, XMP, a comment and an ICC profile."""
    thumbnail = jpeg_bytes(upright.resize((80, 100)))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path_factory.mktemp("tagged") / "tagged.jpg"
    upright.save(path, quality=92, exif=exif_with_thumbnail(thumbnail), xmp=XMP, comment=COMMENT, icc_profile=icc)
    check = Image.open(path)
    assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"
    assert check.getexif().get_ifd(ExifTags.IFD.IFD1)[ExifTags.Base.JpegIFByteCount] == len(thumbnail)
    assert thumbnail in path.read_bytes() and check.info["xmp"] and check.info["comment"] == COMMENT
    return path, thumbnail, icc


def test_metadata_is_dropped_and_icc_kept(tmp_path, tagged):
    path, thumbnail, icc = tagged
    result = run("anonymize", path, "-o", tmp_path / "out", "-m", "blur", "--no-verify")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / path.name
    data = out.read_bytes()
    im = Image.open(out)
    assert not im.getexif() and "exif" not in im.info
    for leak in (b"Exif\0\0", b"xmpmeta", b"Jane", thumbnail[:64]):
        assert leak not in data
    assert "xmp" not in im.info and "comment" not in im.info
    assert im.info["icc_profile"] == icc


def test_keep_metadata_keeps_gps_but_no_thumbnail(tmp_path, tagged):
    path, thumbnail, icc = tagged
    result = run("anonymize", path, "-o", tmp_path / "out", "-m", "blur", "--no-verify", "--keep-metadata")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / path.name
    data = out.read_bytes()
    exif = Image.open(out).getexif()
    assert exif[ExifTags.Base.Make] == "Cam"
    assert exif.get_ifd(ExifTags.IFD.GPSInfo) == {ExifTags.GPS.GPSLatitudeRef: "N",
                                                  ExifTags.GPS.GPSLatitude: (48.0, 51.0, 24.0)}
    assert exif.get_ifd(ExifTags.IFD.IFD1) == {}
    assert thumbnail[:64] not in data and data.count(b"\xff\xd8\xff") == 1  # no second JPEG inside
    assert b"Jane Doe" in data and Image.open(out).info["comment"] == COMMENT
    assert Image.open(out).info["icc_profile"] == icc


@pytest.mark.parametrize(("orientation", "stored", "keep"), [(6, Image.Transpose.ROTATE_90, False),
                                                             (8, Image.Transpose.ROTATE_270, True)],
                         ids=["orientation-6", "orientation-8-keep-metadata"])
def test_exif_orientation_is_processed_upright(tmp_path, upright, orientation, stored, keep):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    path = tmp_path / "rotated.jpg"
    upright.transpose(stored).save(path, quality=95, exif=exif)

    result = run("anonymize", path, "-o", tmp_path / "out", "-m", "blur", "--no-verify",
                 *(["--keep-metadata"] if keep else []))

    assert result.exit_code == 0, result.output
    assert summary(result) == (1, 1, 0, 0, 0)
    out = Image.open(tmp_path / "out" / path.name)
    assert out.size == upright.size
    assert out.getexif().get(ExifTags.Base.Orientation, 1) == 1
    assert bool(out.getexif().get_ifd(ExifTags.IFD.GPSInfo)) == keep
    assert_changed_only_in_face(np.asarray(upright, np.int16), rgb(tmp_path / "out" / path.name), lossy=True)


def test_an_orientation_that_cannot_be_applied_is_named(tmp_path, upright, monkeypatch):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    path = tmp_path / "rotated.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)

    def broken(image):  # Pillow failing on a tag it cannot apply
        raise ValueError("bad orientation")

    monkeypatch.setattr(imageio.ImageOps, "exif_transpose", broken)
    result = run("anonymize", path, "-o", tmp_path / "out", "-m", "blur", "--no-verify")

    assert result.exit_code == 0, result.output
    assert f"anon-plugin: {path}: its EXIF orientation cannot be applied (ValueError: bad orientation); " \
           "read as stored\n" in result.stderr
    assert Image.open(tmp_path / "out" / path.name).size == (upright.height, upright.width)


# --- formats and modes -------------------------------------------------------------------------


def test_formats_keep_name_format_and_size(tmp_path, upright):
    src = tmp_path / "in"
    src.mkdir()
    formats = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF"}
    for suffix in formats:
        upright.save(src / f"face{suffix}")

    result = run("anonymize", src, "-o", tmp_path / "out", "-m", "pixelate", "--no-verify")

    assert result.exit_code == 0, result.output
    assert summary(result) == (5, 5, 0, 0, 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"face{s}" for s in formats)
    for suffix, fmt in formats.items():
        out = Image.open(tmp_path / "out" / f"face{suffix}")
        assert (out.format, out.size, out.mode) == (fmt, upright.size, "RGB")
        assert_changed_only_in_face(rgb(src / f"face{suffix}"), rgb(tmp_path / "out" / f"face{suffix}"),
                                    lossy=fmt in ("JPEG", "WEBP"))


def test_modes_are_converted_and_processed(tmp_path, upright):
    src = tmp_path / "in"
    src.mkdir()
    gray = upright.convert("L")
    alpha = Image.fromarray(np.tile(np.linspace(60, 255, upright.width).astype(np.uint8), (upright.height, 1)))
    rgba = upright.copy()
    rgba.putalpha(alpha)
    gray.save(src / "gray.png")
    rgba.save(src / "rgba.png")
    Image.fromarray(np.asarray(gray).astype(np.uint16) * 257).save(src / "gray16.png")
    upright.convert("P", palette=Image.Palette.ADAPTIVE).save(src / "palette.png")
    upright.convert("CMYK").save(src / "cmyk.jpg", quality=95)
    upright.save(src / "lossless.webp", lossless=True)
    assert [Image.open(src / n).mode for n in ("gray16.png", "palette.png", "cmyk.jpg")] == ["I;16", "P", "CMYK"]

    result = run("anonymize", src, "-o", tmp_path / "out", "-m", "blur", "--no-verify")

    assert result.exit_code == 0, result.output
    assert summary(result) == (6, 6, 0, 0, 0)
    assert re.search(r"^anon-plugin: .*gray16.png: note: 16-bit PNG written as 8-bit$", result.stderr, re.M)
    out = {p.name: Image.open(p) for p in (tmp_path / "out").iterdir()}
    assert {n: (im.format, im.size) for n, im in out.items()} == {
        n: (Image.open(src / n).format, upright.size) for n in out} and len(out) == 6
    assert out["gray.png"].mode == "L" and out["gray16.png"].mode == "L"
    assert out["rgba.png"].mode == "RGBA"
    assert out["palette.png"].mode == "P" and out["cmyk.jpg"].mode == "CMYK"  # given back their own kind
    assert (tmp_path / "out" / "lossless.webp").read_bytes()[12:16] == b"VP8L"
    assert np.array_equal(np.asarray(out["rgba.png"])[..., 3], np.asarray(alpha))
    reference = {"gray.png": gray, "gray16.png": gray, "rgba.png": upright,
                 "palette.png": Image.open(src / "palette.png"), "cmyk.jpg": Image.open(src / "cmyk.jpg"),
                 "lossless.webp": upright}
    for name, before in reference.items():
        assert_changed_only_in_face(np.asarray(before.convert("RGB"), np.int16), rgb(tmp_path / "out" / name),
                                    lossy=name.endswith(".jpg"))


# --- bad inputs --------------------------------------------------------------------------------


def header_only_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height RGB pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def assert_one_line_errors(result: Result, names: list[str]) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line and line != "anonymizing"]
    assert all(line.startswith("anon-plugin: ") for line in lines), lines
    for name in names:
        assert sum(name in line for line in lines) == 1, (name, lines)


def test_bad_inputs_fail_alone_with_one_line_each(tmp_path, photos):
    src = tmp_path / "in"
    src.mkdir()
    data = photos[SMALL].read_bytes()
    (src / "good.jpg").write_bytes(data)
    (src / "truncated.jpg").write_bytes(photos[PHOTO].read_bytes()[: photos[PHOTO].stat().st_size // 2])
    (src / "text.jpg").write_text("this is not a photo\n")
    (src / "empty.jpg").write_bytes(b"")
    (src / "large.jpg").write_bytes(photos[TALL].read_bytes())
    (src / "bomb.png").write_bytes(header_only_png(50_000, 50_000))
    reasons = {"truncated.jpg": "truncated", "text.jpg": "not an image", "empty.jpg": "not an image",
               "large.jpg": "over the limit of 300,000", "bomb.png": "pixel limit", "missing.jpg": "no such file"}

    result = run("anonymize", src, src / "missing.jpg", "-o", tmp_path / "out", "-m", "blur", "--no-verify",
                 "--max-pixels", 300_000)

    assert result.exit_code == 1
    assert_one_line_errors(result, list(reasons))
    for name, reason in reasons.items():
        assert re.search(f"^anon-plugin: .*{re.escape(name)}: .*{reason}", result.stderr, re.M), name
    assert summary(result) == (1, 1, 0, 6, 0)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.jpg"]  # no *.part, nothing half-written
    assert Image.open(tmp_path / "out" / "good.jpg").size == Image.open(photos[SMALL]).size


def test_unreadable_file(tmp_path, photos):
    path = tmp_path / "locked.jpg"
    path.write_bytes(photos[SMALL].read_bytes())
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reading")
        result = run("anonymize", path, photos[SMALL], "-o", tmp_path / "out", "-m", "blur", "--no-verify")
    finally:
        path.chmod(0o644)
    assert result.exit_code == 1
    assert_one_line_errors(result, ["locked.jpg"])
    assert "permission denied" in result.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == [SMALL]


def test_interrupted_write_leaves_no_file(tmp_path, photos, monkeypatch):
    def replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", replace)
    result = run("anonymize", photos[SMALL], "-o", tmp_path / "out", "-m", "blur", "--no-verify")
    assert result.exit_code == 1
    assert_one_line_errors(result, [SMALL])
    assert "No space left on device" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []


# --- exit codes, overwrite, folders ------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["anonymize", "{photo}"],
    ["anonymize", "{photo}", "-o", "{out}", "--method", "smudge"],
    ["anonymize", "{photo}", "-o", "{out}", "--threshold", "1.5"],
    ["anonymize", "{photo}", "-o", "{out}", "--strength", "huge"],
    ["anonymize", "-o", "{out}"],
    ["explain", "{photo}"],
    ["anonymize", "{photo}", "-o", "{out}", "--metadata", "strip-some"],
    ["anonymize", "{photo}", "-o", "{out}", "--metadata", "strip-all", "--keep-metadata"],
    ["anonymize", "{photo}", "-o", "{out}", "--output-format", "png"],
], ids=["no-output", "bad-method", "threshold-1.5", "bad-strength", "no-input", "explain-no-output", "bad-metadata",
        "keep-metadata-conflict", "bad-output-format"])
def test_usage_errors_exit_2(tmp_path, photos, args):
    result = run(*[a.format(photo=photos[SMALL], out=tmp_path / "out") for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.strip()
    assert not (tmp_path / "out").exists()


def test_existing_output_is_kept_without_overwrite(tmp_path, photos):
    out = tmp_path / "out"
    out.mkdir()
    (out / SMALL).write_bytes(b"previous run")

    result = run("anonymize", photos[SMALL], "-o", out, "-m", "blur", "--no-verify")
    assert result.exit_code == 1
    assert_one_line_errors(result, [SMALL])
    assert "--overwrite" in result.stderr and (out / SMALL).read_bytes() == b"previous run"

    result = run("anonymize", photos[SMALL], "-o", out, "-m", "blur", "--no-verify", "--overwrite")
    assert result.exit_code == 0, result.output
    assert Image.open(out / SMALL).size == Image.open(photos[SMALL]).size


def test_folder_tree_is_mirrored_and_output_inside_is_not_reread(tmp_path, photos, upright):
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.jpg").write_bytes(photos[SMALL].read_bytes())
    upright.save(src / "a" / "mid.png")
    (src / "a" / "b" / "deep.jpg").write_bytes(photos[PHOTO].read_bytes())
    (src / "a" / "notes.txt").write_text("not an image")
    wanted = sorted(["top.jpg", "a/mid.png", "a/b/deep.jpg"])

    for extra in ([], ["--overwrite"]):  # the second run finds the first one's outputs inside the input
        result = run("anonymize", src, "-o", src / "out", "-m", "blur", "--no-verify", *extra)
        assert result.exit_code == 1, result.output  # notes.txt is named as skipped
        assert summary(result) == (3, 3, 0, 0, 1)
        assert re.findall(r"^anon-plugin: (.*): skipped: (.*)$", result.stderr, re.M) == [
            (str(src / "a" / "notes.txt"), "not a supported image format (.txt)")]
        written = sorted(str(p.relative_to(src / "out")) for p in (src / "out").rglob("*") if p.is_file())
        assert written == wanted


def test_photo_without_face_is_written_without_metadata(tmp_path, photos):
    no_face = Image.open(photos[TALL]).convert("RGB").crop((0, 500, 630, 876))
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    path = tmp_path / "street.jpg"
    no_face.save(path, quality=95, exif=exif, comment=COMMENT)

    result = run("anonymize", path, "-o", tmp_path / "out", "-m", "blur", "--no-verify",
                 "--report", tmp_path / "report.json")

    assert result.exit_code == 0, result.output
    assert summary(result) == (1, 0, 0, 0, 0)
    out = Image.open(tmp_path / "out" / "street.jpg")
    assert out.size == no_face.size and not out.getexif() and "comment" not in out.info
    (image,) = json.loads((tmp_path / "report.json").read_text())["images"]
    assert image["faces"] == [] and image["status"] == "ok"


# --- report, explain ---------------------------------------------------------------------------


@pytest.mark.slow  # --report measures with three recognizers (SFace, FaceNet, dlib)
def test_report_and_explain(tmp_path, photos):
    report = tmp_path / "report.json"
    result = run("anonymize", photos[PHOTO], photos[SMALL], "-o", tmp_path / "out", "-m", "solid", "--no-verify",
                 "--threshold", "0.5", "--report", report, "--explain")

    assert result.exit_code == 0, result.output
    assert summary(result) == (2, 2, 0, 0, 0)
    for name in (PHOTO, SMALL):
        explain = Image.open(tmp_path / "out" / name.replace(".jpg", ".explain.png"))
        assert explain.format == "PNG" and explain.width == 4 * 256
    data = json.loads(report.read_text())
    assert data["options"]["method"] == "solid" and data["options"]["threshold"] == 0.5
    assert [Path(i["input"]).name for i in data["images"]] == [PHOTO, SMALL]
    for image in data["images"]:
        assert image["status"] == "ok" and image["error"] is None
        assert Path(image["output"]).is_file()
        (face,) = image["faces"]
        x0, y0, x1, y1 = face["box"]
        assert 0 <= x0 < x1 <= image["width"] and 0 <= y0 < y1 <= image["height"]
        assert face["method"] == "solid" and face["threshold"] == 0.5
        assert 0 < face["mask_area"] <= 1 and face["covered"] is False
        similarity = face["similarity"]
        assert set(similarity) == {"sface_cosine", "facenet_cosine", "dlib_distance"}
        assert all(-1 <= similarity[k] <= 1 for k in ("sface_cosine", "facenet_cosine"))
        assert similarity["dlib_distance"] > 0
        assert face["still_matched_by"] == ((["sface"] if similarity["sface_cosine"] >= 0.363 else [])
                                            + (["dlib"] if similarity["dlib_distance"] < 0.6 else []))
    warned = [i for i in data["images"] if i["faces"][0]["still_matched_by"]]
    assert result.stderr.count("still matches the original") == len(warned)


def test_anonymize_verifies_by_default_and_no_verify_turns_it_off(tmp_path, photos, monkeypatch):
    from anon_plugin.inference import fill, verify

    def faces(report: Path) -> list[dict]:
        data = json.loads(report.read_text())
        return [face for image in data["images"] for face in image["faces"]]

    result = run("anonymize", photos[PHOTO], "-o", tmp_path / "a", "-m", "generate", "--report", tmp_path / "a.json")
    (face,) = faces(tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text())["options"]["verify"] is True
    assert face["steps"][0] == "generate" and result.exit_code == (1 if face["covered"] else 0), result.output
    assert face["covered"] or not verify.too_close(face["similarity"])

    # A fill that gives back the original crop: verified, the face climbs the whole ladder and is covered.
    monkeypatch.setattr(fill, "fill_many", lambda method, crops, *args: (crops.copy(), [{}] * len(crops)))
    result = run("anonymize", photos[PHOTO], "-o", tmp_path / "b", "-m", "generate", "--report", tmp_path / "b.json")
    (face,) = faces(tmp_path / "b.json")
    assert result.exit_code == 1 and summary(result) == (1, 1, 1, 0, 0)
    assert face["steps"] == ["generate", "redraw", "strength:large", "region", "covered"] and face["covered"]
    assert "still too close after region" in result.stderr
    # --no-verify: what the fill gave is written out, and nothing follows the fill.
    result = run("anonymize", photos[PHOTO], "-o", tmp_path / "c", "-m", "generate", "--no-verify",
                 "--report", tmp_path / "c.json")
    (face,) = faces(tmp_path / "c.json")
    assert result.exit_code == 0 and face["steps"] == ["generate"] and not face["covered"]
    assert json.loads((tmp_path / "c.json").read_text())["options"]["verify"] is False
    assert "still matches the original" in result.stderr


def test_unwritable_report_fails_in_one_line(tmp_path, photos):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    result = run("anonymize", photos[SMALL], "-o", tmp_path / "out", "-m", "blur", "--no-verify",
                 "--report", blocker / "report.json")
    assert result.exit_code == 1
    assert_one_line_errors(result, ["report.json"])
    assert Image.open(tmp_path / "out" / SMALL).size == Image.open(photos[SMALL]).size


def test_existing_report_is_refused_before_any_work(tmp_path, photos):
    report = tmp_path / "report.json"
    report.write_text("last week's report\n")

    result = run("anonymize", photos[SMALL], "-o", tmp_path / "out", "-m", "blur", "--no-verify", "--report", report)

    assert result.exit_code == 2
    assert result.stderr == f"anon-plugin: report: {report} exists (use --overwrite)\n"
    assert report.read_text() == "last week's report\n" and not (tmp_path / "out").exists()

    result = run("anonymize", photos[SMALL], "-o", tmp_path / "out", "-m", "blur", "--no-verify",
                 "--report", report, "--overwrite")
    assert result.exit_code == 0, result.output
    (image,) = json.loads(report.read_text())["images"]
    assert image["status"] == "ok" and image["metadata_removed"] == [] and image["notes"] == []


@contextlib.contextmanager
def as_nobody():
    """Run the block with an unprivileged uid when we are root, so that mode 000 means it."""
    if os.geteuid() != 0:
        yield
        return
    os.setresgid(65534, 65534, 0)  # the saved ids stay root's, so we can come back
    os.setresuid(65534, 65534, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)


def test_what_folders_hold_besides_images_is_named(tmp_path, photos, monkeypatch):
    base = Path(tempfile.mkdtemp(prefix="anon-cli-"))  # not under pytest's 0700 tmp: nobody must reach it
    src, locked = base / "photos", base / "locked"
    (src / ".thumbnails").mkdir(parents=True)
    locked.mkdir()
    shutil.copy(photos[SMALL], src / "face.jpg")
    for name in (".face.jpg", "notes.TXT", "face.explain.png"):
        (src / name).write_bytes(b"")
    for folder in (base, src, src / ".thumbnails"):
        folder.chmod(0o755)
    (src / "face.jpg").chmod(0o644)
    locked.chmod(0)
    real_walk = os.walk

    def walk_unprivileged(*args, **kwargs):  # as root, only listing the folders runs unprivileged
        walker = real_walk(*args, **kwargs)
        while True:
            with as_nobody():
                try:
                    step = next(walker)
                except StopIteration:
                    return
            yield step

    monkeypatch.setattr(os, "walk", walk_unprivileged)
    try:
        with as_nobody():
            assert not os.access(locked, os.R_OK), "mode 000 is readable here"
        report = tmp_path / "report.json"
        result = run("anonymize", locked, src, "-o", tmp_path / "out", "-m", "blur", "--no-verify", "--report", report)
    finally:
        locked.chmod(0o755)
        shutil.rmtree(base)

    assert result.exit_code == 1, result.output
    assert summary(result) == (1, 1, 0, 0, 4)
    skipped = {(str(src / ".thumbnails"), "hidden folder"), (str(src / ".face.jpg"), "hidden file"),
               (str(src / "notes.TXT"), "not a supported image format (.txt)"),
               (str(locked), "folder cannot be read (permission denied)")}
    assert set(re.findall(r"^anon-plugin: (.*): skipped: (.*)$", result.stderr, re.M)) == skipped
    assert_one_line_errors(result, [".thumbnails", ".face.jpg", "notes.TXT", str(locked)])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["face.jpg"]  # the unreadable folder stopped nothing
    data = json.loads(report.read_text())
    assert {(s["path"], s["reason"]) for s in data["skipped"]} == skipped


def test_heic_in_heic_or_jpeg_out(tmp_path, upright):
    from pillow_heif import register_heif_opener

    register_heif_opener()
    path = tmp_path / "phone.HEIC"
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    exif[ExifTags.Base.Make] = "Apple"
    upright.save(path, format="HEIF", quality=90, exif=exif)

    same = run("anonymize", path, "-o", tmp_path / "same", "-m", "blur", "--no-verify",
               "--metadata", "strip-identifying")
    jpeg = run("anonymize", path, "-o", tmp_path / "jpeg", "-m", "blur", "--no-verify", "--output-format", "jpeg")

    assert same.exit_code == 0 and jpeg.exit_code == 0, same.output + jpeg.output
    heic, jpg = Image.open(tmp_path / "same" / "phone.HEIC"), Image.open(tmp_path / "jpeg" / "phone.jpg")
    assert (heic.format, heic.size, jpg.format, jpg.size) == ("HEIF", upright.size, "JPEG", upright.size)
    assert dict(heic.getexif()) == {ExifTags.Base.Make: "Apple"} and not jpg.getexif()
    for out in (tmp_path / "same" / "phone.HEIC", tmp_path / "jpeg" / "phone.jpg"):
        assert_changed_only_in_face(np.asarray(upright, np.int16), rgb(out), lossy=True)


def test_explain_command(tmp_path, photos):
    out = tmp_path / "explain.png"
    result = run("explain", photos[SMALL], "-o", out, "-m", "blur", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "1 faces" in result.stderr
    im = Image.open(out)
    assert im.format == "PNG" and im.width == 4 * 256 and im.height > 256

    result = run("explain", photos[SMALL], "-o", out, "-m", "blur", "--no-verify")
    assert result.exit_code == 1 and "exists" in result.stderr


# --- fail closed -------------------------------------------------------------------------------


def test_failed_saliency_pixelates_the_face(tmp_path, photos, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("attention exploded")

    monkeypatch.setattr("anon_plugin.inference.saliency.attention_map", broken)
    report = tmp_path / "report.json"
    result = run("anonymize", photos[PHOTO], "-o", tmp_path / "out", "--report", report)

    assert result.exit_code == 1
    assert summary(result) == (1, 1, 1, 0, 0)
    (line,) = [line for line in result.stderr.splitlines() if "pixelated" in line]
    assert PHOTO in line and "attention exploded" in line
    assert_one_line_errors(result, [PHOTO])
    assert "its face(s) covered" not in result.stderr  # the engine's warning and traceback: only with --debug
    (face,) = json.loads(report.read_text())["images"][0]["faces"]
    assert face["covered"] is True and "saliency" in face["error"] and "attention exploded" in face["error"]
    x0, y0, x1, y1 = (round(v) for v in face["box"])
    before, after = rgb(photos[PHOTO]), rgb(tmp_path / "out" / PHOTO)
    inside = np.abs(before - after)[y0:y1, x0:x1]
    assert inside.mean() > 8  # pixelated, not a re-encoded copy


# --- the command itself ------------------------------------------------------------------------


def test_choices_match_the_registries():
    from anon_plugin import metadata
    from anon_plugin.inference import fill, mask, registry

    assert METHODS == tuple(fill.FILLERS)
    assert STRENGTHS == tuple(mask.STRENGTHS)
    assert RECOGNIZERS == registry.SALIENCY
    assert METADATA_MODES == metadata.MODES and OUTPUT_FORMATS == imageio.OUTPUT_FORMATS


def test_anonymize_defaults_are_the_default_policy():
    from anon_plugin.inference.records import AnonymizerConfig
    from anon_plugin.policies import Policy

    import click

    defaults = {p.name: p.default for p in main.get_command(click.Context(main), "anonymize").params}
    policy, engine = Policy(), AnonymizerConfig()
    for name in ("method", "strength", "threshold", "recognizer", "verify"):
        assert defaults[name] == getattr(policy, name) == getattr(engine, name), name


@pytest.mark.parametrize(("error", "line"), [
    (AlbumError("no album named 'x'"), "anon-plugin: no album named 'x'"),
    (OutputExistsError("out.jpg"), "anon-plugin: out.jpg exists (use --overwrite)"),
    (RuntimeError("a bug\nsecond line"), "anon-plugin: unexpected RuntimeError: a bug (rerun with --debug)"),
], ids=["library", "exists", "unexpected"])
def test_what_a_command_raises_ends_in_one_line(monkeypatch, error, line):
    import click

    @click.command("boom")
    def boom() -> None:
        raise error

    monkeypatch.setitem(main.commands, "boom", boom)
    result = run("boom")
    assert (result.exit_code, result.stderr, result.stdout) == (1, line + "\n", "")
    if not isinstance(error, AnonPluginError):
        assert run("--debug", "boom").exception is error  # the traceback, not one line


def test_every_lazy_command_loads_with_its_listed_help():
    import click

    ctx = click.Context(main)
    for name, (_, summary) in main.lazy.items():
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
        assert command.get_short_help_str(200) == summary


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["anonymize", "--help"]])
def test_help_and_version_do_not_import_torch(args):
    code = ("import sys\nfrom anon_plugin.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "heavy = sorted({'torch', 'cv2', 'dlib', 'onnx'} & set(sys.modules))\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (__version__ in done.stdout) if args == ["--version"] else ("Usage:" in done.stdout)


@pytest.mark.slow  # a fresh process loads every model
def test_installed_command_end_to_end(tmp_path, photos):
    command = Path(sys.executable).with_name("anon-plugin")
    done = subprocess.run([str(command), "anonymize", str(photos[SMALL]), "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert SUMMARY.search(done.stderr).groups() == ("1", "1", "0", "0", "0")
    assert Image.open(tmp_path / "out" / SMALL).size == Image.open(photos[SMALL]).size
