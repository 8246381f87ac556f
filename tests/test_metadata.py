"""Metadata stripping, judged by exiftool on real outputs, in every format we write.

Inputs are a real face photo converted to JPEG, PNG, WebP, TIFF and HEIC,
tagged by exiftool itself (and by piexif for a maker note) with every
identifying tag we know of; exiftool first checks that the inputs really carry
them, then reads what the real strip path wrote.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import piexif
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms

from anon_plugin import metadata
from anon_plugin.cli import main
from anon_plugin.commands.anonymize import METADATA_MODES
from anon_plugin.imageio import encode, read_picture

if shutil.which("exiftool") is None:
    if os.environ.get("CI"):
        pytest.fail("exiftool is required under CI (apt-get install libimage-exiftool-perl)", pytrace=False)
    pytest.skip("exiftool is not installed (apt-get install libimage-exiftool-perl)", allow_module_level=True)

PHOTO = "003817.jpg"  # 195x260, one face
FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF", "heic": "HEIF"}
MARKERS = ("Jane", "BODY123", "CAM456", "LENS789", "janes-laptop", "0123456789abcdef", "123456789")
TAG_ARGS = [
    "-Model=EOS T1", "-ExposureTime=1/250", "-FNumber=2.8", "-ISO=400", "-LensModel=EF 50mm f/1.8",
    "-LensMake=Jane Lenses", "-LensInfo=50 50 1.8 1.8", "-DateTimeOriginal=2024:05:01 10:00:00",
    "-GPSLatitude=48.85", "-GPSLatitudeRef=N", "-GPSLongitude=2.35", "-GPSLongitudeRef=E",
    "-SerialNumber=BODY123", "-CameraSerialNumber=CAM456", "-LensSerialNumber=LENS789",
    "-ImageUniqueID=0123456789abcdef0123456789abcdef", "-OwnerName=Jane Doe", "-Artist=Jane Doe",
    "-Copyright=Jane Doe", "-ImageDescription=Jane at home", "-UserComment=Jane at home", "-XPTitle=Jane T",
    "-XPComment=Jane C", "-XPAuthor=Jane A", "-XPKeywords=Jane K", "-XPSubject=Jane S",
    "-HostComputer=janes-laptop", "-DocumentName=jane.jpg", "-XMP-dc:Creator=Jane Doe",
    "-IPTC:By-line=Jane Doe", "-Comment=taken at Jane's home", "-PNG:Author=Jane", "-PNG:Software=JaneCam",
]
THUMBNAIL_ARGS = ["-ThumbnailImage<={thumb}", "-PhotoshopThumbnail<={thumb}", "-XMP-xmp:ThumbnailImage<={thumb}"]

# What exiftool must find in each tagged input, and the name our result gives it.
COMMON = {"GPS:GPSLatitude": "GPSInfo", "ExifIFD:SerialNumber": "BodySerialNumber",
          "IFD0:CameraSerialNumber": "CameraSerialNumber", "ExifIFD:LensSerialNumber": "LensSerialNumber",
          "ExifIFD:ImageUniqueID": "ImageUniqueID", "ExifIFD:OwnerName": "CameraOwnerName",
          "IFD0:Artist": "Artist", "IFD0:Copyright": "Copyright", "IFD0:ImageDescription": "ImageDescription",
          "ExifIFD:UserComment": "UserComment", "IFD0:XPTitle": "XPTitle", "IFD0:XPComment": "XPComment",
          "IFD0:XPAuthor": "XPAuthor", "IFD0:XPKeywords": "XPKeywords", "IFD0:XPSubject": "XPSubject",
          "IFD0:HostComputer": "HostComputer", "IFD0:DocumentName": "DocumentName",
          "Canon:SerialNumber": "MakerNote", "XMP-dc:Creator": "XMP", "XMP-xmp:ThumbnailImage": "XMP"}
EXPECTED = {
    "jpg": COMMON | {"IFD1:ThumbnailImage": "Thumbnail", "IPTC:By-line": "IPTC",
                     "Photoshop:PhotoshopThumbnail": "Photoshop:Thumbnail", "File:Comment": "Comment"},
    "png": COMMON | {"IFD1:ThumbnailImage": "Thumbnail", "PNG:Author": "PNG:Author", "PNG:Software": "PNG:Software",
                     "PNG:Comment": "PNG:Comment", "IPTC:By-line": "PNG:Raw profile type iptc"},
    "webp": COMMON | {"IFD1:ThumbnailImage": "Thumbnail"},
    "tif": COMMON | {"IPTC:By-line": "IPTC", "Photoshop:PhotoshopThumbnail": "Photoshop:Thumbnail"},
    "heic": COMMON | {"IFD1:ThumbnailImage": "Thumbnail"},
}
HARMLESS = {"IFD0:Make": "Canon", "IFD0:Model": "EOS T1", "ExifIFD:ExposureTime": "1/250", "ExifIFD:FNumber": 2.8,
            "ExifIFD:ISO": 400, "ExifIFD:LensModel": "EF 50mm f/1.8", "ExifIFD:DateTimeOriginal": "2024:05:01 10:00:00"}
ALLOWED = {*HARMLESS, "ExifIFD:ExifVersion", "ExifIFD:ColorSpace", "ExifIFD:LensInfo"}
PICTURES = re.compile(r"^(IFD1:Thumbnail|XMP-xmp:Thumbnail|Photoshop:.*Thumbnail|IPTC:|Canon:)")

# exiftool's names for the image itself, not metadata about it.
STRUCTURE_GROUPS = {"ExifTool", "System", "File", "Composite", "QuickTime", "Meta", "RIFF", "JFIF"}
STRUCTURE_NAMES = {
    "PNG": {"ImageWidth", "ImageHeight", "BitDepth", "ColorType", "Compression", "Filter", "Interlace",
            "ProfileName", "Palette", "Transparency", "SRGBRendering", "Gamma"},
    "IFD0": {"ImageWidth", "ImageHeight", "BitsPerSample", "Compression", "PhotometricInterpretation",
             "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts", "PlanarConfiguration",
             "ExtraSamples", "SampleFormat"},
}


def exiftool(*paths: Path) -> dict[Path, dict]:
    """exiftool's tags for each path, ``GROUP:Name`` keys (``-a -G1 -s``), in one process."""
    done = subprocess.run(["exiftool", "-j", "-a", "-G1", "-s", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    return {Path(t["SourceFile"]): t for t in json.loads(done.stdout)}


def metadata_tags(tags: dict) -> dict:
    """The tags that are metadata, not the image's own structure or its ICC profile."""
    found = {}
    for key, value in tags.items():
        group, _, name = key.partition(":")
        if key == "File:Comment" or not (group in STRUCTURE_GROUPS or group.startswith("ICC")
                                         or name in STRUCTURE_NAMES.get(group, ()) or key == "SourceFile"):
            found[key] = value
    return found


def identifying(tags: dict) -> set[str]:
    """Every tag that names, locates or pictures someone: by group, by name, or by our marker values."""
    names = {n.split(":")[1] for n in COMMON} | {"Comment", "Author", "Software", "By-line", "Creator",
                                                 "ThumbnailImage", "PhotoshopThumbnail", "LensMake"}
    found = set()
    for key, value in metadata_tags(tags).items():
        group, _, name = key.partition(":")
        if (group.split("-")[0] in ("GPS", "IFD1", "IPTC", "Photoshop", "XMP", "MakerNotes", "Canon")
                or name in names or any(m in str(value) for m in MARKERS)):
            found.add(key)
    return found


def canon_makernote() -> bytes:
    """A Canon maker note IFD holding a body serial number (tag 0x000c), big-endian like piexif's EXIF."""
    return (struct.pack(">HHHII", 2, 0x000C, 4, 1, 123456789) + struct.pack(">HHII", 0x0010, 4, 1, 0x80000001)
            + b"\0" * 4)


@pytest.fixture(scope="module")
def face(wild_photos: list[Path]) -> Image.Image:
    found = [p for p in wild_photos if p.name == PHOTO]
    assert found, f"{PHOTO} missing from the wild photos"
    return Image.open(found[0]).convert("RGB")


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, face, icc) -> dict[str, Path]:
    """The face photo in each format, carrying every identifying tag, checked with exiftool."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    folder = tmp_path_factory.mktemp("tagged")
    thumb = folder / "thumb.jpg"
    face.resize((60, 80)).save(thumb, quality=80)
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon"}, "Exif": {piexif.ExifIFD.MakerNote: canon_makernote()}})
    paths = {}
    for suffix, fmt in FORMATS.items():
        path = paths[suffix] = folder / f"face.{suffix}"
        face.save(path, format=fmt, exif=exif, icc_profile=icc, **({"quality": 90} if fmt != "TIFF" else {}))
    args = [*TAG_ARGS, *(a.format(thumb=thumb) for a in THUMBNAIL_ARGS)]
    done = subprocess.run(["exiftool", "-overwrite_original", *args, *map(str, paths.values())],
                          capture_output=True, text=True, timeout=120)
    assert "5 image files updated" in done.stdout, done.stdout + done.stderr
    found = exiftool(*paths.values())
    for suffix, path in paths.items():
        missing = set(EXPECTED[suffix]) - set(found[path])
        assert not missing, f"{suffix} input lacks {missing}"
        assert {k: found[path].get(k) for k in HARMLESS} == HARMLESS, suffix
    return paths


@pytest.fixture(scope="module")
def stripped(tagged, tmp_path_factory) -> dict[tuple[str, str], tuple[Path, object]]:
    """(format, mode) -> (output file, Encoded), through read_picture + encode."""
    folder = tmp_path_factory.mktemp("stripped")
    outputs = {}
    for suffix, path in tagged.items():
        picture = read_picture(path)
        for mode in METADATA_MODES:
            encoded = encode(picture, picture.rgb, mode)
            out = folder / f"{mode}.{suffix}"
            out.write_bytes(encoded.data)
            outputs[suffix, mode] = out, encoded
    return outputs


@pytest.fixture(scope="module")
def judged(stripped) -> dict[Path, dict]:
    return exiftool(*(out for out, _ in stripped.values()))


@pytest.mark.parametrize("suffix", FORMATS)
def test_strip_all_leaves_no_metadata_but_icc(suffix, stripped, judged, tagged, icc):
    out, encoded = stripped[suffix, "strip-all"]
    tags = judged[out]
    assert identifying(tags) == set()
    assert metadata_tags(tags) == {}
    assert any(k.startswith("ICC") for k in tags) and Image.open(out).info["icc_profile"] == icc
    data = out.read_bytes()
    assert not any(m.encode() in data for m in MARKERS)
    assert set(EXPECTED[suffix].values()) <= set(encoded.removed)
    assert {"Make", "Model", "ExposureTime", "LensModel", "DateTimeOriginal"} <= set(encoded.removed)


@pytest.mark.parametrize("suffix", FORMATS)
def test_strip_identifying_keeps_only_the_harmless(suffix, stripped, judged, icc):
    out, encoded = stripped[suffix, "strip-identifying"]
    tags = judged[out]
    assert identifying(tags) == set()
    assert {k: tags.get(k) for k in HARMLESS} == HARMLESS
    assert set(metadata_tags(tags)) <= ALLOWED, set(metadata_tags(tags)) - ALLOWED
    assert any(k.startswith("ICC") for k in tags) and Image.open(out).info["icc_profile"] == icc
    assert not any(m.encode() in out.read_bytes() for m in MARKERS)
    assert set(EXPECTED[suffix].values()) <= set(encoded.removed)
    assert not {"Make", "Model", "ExposureTime", "FNumber", "ISOSpeedRatings", "LensModel",
                "DateTimeOriginal"} & set(encoded.removed)
    assert "LensMake" in encoded.removed  # the lens model stays, its maker is not on the list


@pytest.mark.parametrize("suffix", FORMATS)
def test_keep_never_keeps_a_picture_of_the_original(suffix, stripped, judged, tagged):
    out, encoded = stripped[suffix, "keep"]
    tags = judged[out]
    assert not [k for k in tags if PICTURES.match(k)], [k for k in tags if PICTURES.match(k)]
    assert not [k for k in tags if k.startswith("XMP")]  # its XMP embeds a thumbnail: dropped whole
    thumb = (tagged["jpg"].parent / "thumb.jpg").read_bytes()
    assert thumb[len(thumb) // 2:len(thumb) // 2 + 64] not in out.read_bytes()
    assert tags["GPS:GPSLatitudeRef"] == "North" and tags["IFD0:Artist"] == "Jane Doe"  # keep means keep
    assert {"MakerNote", "XMP"} | ({"Thumbnail"} if suffix != "tif" else set()) <= set(encoded.removed)
    assert any("XMP removed whole" in n for n in encoded.notes)


def test_keep_keeps_xmp_and_comment_without_pictures(tmp_path, tagged):
    path = tmp_path / "plain.jpg"
    shutil.copy(tagged["jpg"], path)
    subprocess.run(["exiftool", "-overwrite_original", "-XMP-xmp:all=", "-XMP-dc:Creator=Jane Doe",
                    "-XMP-tiff:Orientation#=6", str(path)], check=True, capture_output=True, timeout=60)
    encoded = encode(picture := read_picture(path), picture.rgb, "keep")
    (tmp_path / "out.jpg").write_bytes(encoded.data)
    tags = exiftool(tmp_path / "out.jpg")[tmp_path / "out.jpg"]
    assert tags["XMP-dc:Creator"] == "Jane Doe" and tags["File:Comment"] == "taken at Jane's home"
    assert "XMP-tiff:Orientation" not in tags  # the pixels are written upright
    assert "XMP" not in encoded.removed and "Comment" not in encoded.removed
    assert not [k for k in tags if PICTURES.match(k)]


@pytest.mark.parametrize("mode", ["strip-identifying", "strip-all"])
def test_cli_strips_every_format(tmp_path, tagged, mode):
    report = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["anonymize", *map(str, tagged.values()), "-o", str(tmp_path / "out"),
                                       "-m", "blur", "--no-verify", "--metadata", mode, "--report", str(report)])
    assert result.exit_code == 0, result.output
    outputs = [tmp_path / "out" / p.name for p in tagged.values()]
    for out, tags in exiftool(*outputs).items():
        assert identifying(tags) == set(), out.name
        if mode == "strip-identifying":
            assert {k: tags.get(k) for k in HARMLESS} == HARMLESS, out.name
        else:
            assert metadata_tags(tags) == {}, out.name
    data = json.loads(report.read_text())
    assert data["options"]["metadata"] == mode and len(data["images"]) == len(FORMATS)
    for image in data["images"]:
        suffix = Path(image["input"]).suffix[1:]
        assert set(EXPECTED[suffix].values()) <= set(image["metadata_removed"]), suffix


def test_cli_keep_metadata_keeps_no_thumbnail(tmp_path, tagged):
    result = CliRunner().invoke(main, ["anonymize", str(tagged["jpg"]), "-o", str(tmp_path / "out"), "-m", "blur",
                                       "--no-verify", "--keep-metadata"])
    assert result.exit_code == 0, result.output
    tags = exiftool(tmp_path / "out" / "face.jpg")[tmp_path / "out" / "face.jpg"]
    assert not [k for k in tags if PICTURES.match(k) or k.startswith("XMP")]
    assert tags["GPS:GPSLatitudeRef"] == "North" and tags["File:Comment"] == "taken at Jane's home"


# --- malformed EXIF ----------------------------------------------------------------------------


def _corrupt(exif: bytes, how: str) -> bytes:
    tiff = bytearray(exif[6:])
    if how == "gps-pointer-past-the-end":
        at = tiff.index(b"\x88\x25\x00\x04\x00\x00\x00\x01")  # GPSInfo, LONG, 1 (big-endian)
        tiff[at + 8:at + 12] = b"\x7f\xff\xff\x00"
    elif how == "entry-count-too-large":
        tiff[8:10] = b"\xff\xf0"
    elif how == "truncated":
        tiff = tiff[: len(tiff) // 3]
    elif how == "garbage":
        tiff[8:] = bytes((i * 37) & 0xFF for i in range(len(tiff) - 8))
    return b"Exif\0\0" + bytes(tiff)


@pytest.mark.parametrize("how", ["gps-pointer-past-the-end", "entry-count-too-large", "truncated", "garbage"])
def test_malformed_exif_is_stripped_whole(tmp_path, face, how):
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Artist: b"Jane Doe"},
                        "Exif": {piexif.ExifIFD.BodySerialNumber: b"BODY123"},
                        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N",
                                piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (0, 1))}})
    path = tmp_path / "broken.jpg"
    face.save(path, quality=90, exif=_corrupt(exif, how))
    picture = read_picture(path)
    for mode in METADATA_MODES:
        encoded = encode(picture, picture.rgb, mode)
        assert encoded.removed == ("EXIF",), (mode, encoded.removed)
        assert any("EXIF could not be parsed" in n and "all of it removed" in n for n in encoded.notes)
        out = tmp_path / f"{mode}.jpg"
        out.write_bytes(encoded.data)
        assert not Image.open(out).getexif() and b"Exif\0\0" not in encoded.data
        assert not metadata_tags(exiftool(out)[out])


def test_any_parser_error_strips_all_exif(monkeypatch):
    def exploding(data):
        raise MemoryError("piexif asked for 4 GB")

    monkeypatch.setattr(metadata.piexif, "load", exploding)
    found = metadata.Found(exif=piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon"}})[6:])
    for mode in METADATA_MODES:
        result = metadata.strip(found, mode)
        assert result.exif is None and result.removed == ("EXIF",)
        assert "MemoryError" in result.notes[0]


def test_strip_identifying_is_an_allowlist():
    """A tag we do not know (here 0xC4A5 PrintImageMatching and a private 0xFDE8) is removed, by name."""
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.PrintImageMatching: b"PrintIM0300"},
                        "Exif": {piexif.ExifIFD.ExposureTime: (1, 250)}})[6:]
    # Append a private tag piexif does not know to the Exif IFD by rewriting it with Pillow.
    tags = Image.Exif()
    tags.load(exif)
    tags.get_ifd(0x8769)[0xFDE8] = "Jane Doe"
    result = metadata.strip(metadata.Found(exif=tags.tobytes()[6:]), "strip-identifying")
    assert {"PrintImageMatching", "EXIF:0xFDE8"} <= set(result.removed)
    kept = piexif.load(result.exif)
    assert kept["0th"] == {piexif.ImageIFD.Make: b"Canon",
                           piexif.ImageIFD.ExifTag: kept["0th"][piexif.ImageIFD.ExifTag]}
    assert kept["Exif"] == {piexif.ExifIFD.ExposureTime: (1, 250)}


def test_orientation_is_applied_and_its_tag_removed(tmp_path, face):
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Orientation: 6}})
    path = tmp_path / "rotated.jpg"
    face.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
    picture = read_picture(path)
    assert picture.rgb.shape[:2] == (face.height, face.width)
    for mode in METADATA_MODES:
        encoded = encode(picture, picture.rgb, mode)
        assert Image.open(io.BytesIO(encoded.data)).getexif().get(0x0112) is None
        assert "Orientation" in encoded.removed


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="strip-identifying, strip-all, keep"):
        metadata.strip(metadata.Found(), "strip-some")
    assert metadata.MODES == METADATA_MODES
