"""What in a photo's metadata identifies someone, and what is left of it per mode.

Outputs are always encoded afresh from pixels, so nothing reaches them unless
it is handed to the encoder: this module decides what is handed over.

- ``strip-all``: no EXIF, XMP, IPTC, comment or text chunk at all.
- ``strip-identifying``: only an allowlist of EXIF tags (camera make and model,
  exposure settings, lens model, dates, colour space, pixel dimensions).
  Everything else goes, tags unknown to us included.
- ``keep`` (the CLI's ``--keep-metadata``): EXIF (GPS included), XMP and JPEG
  comments stay, but never a picture of the original: the EXIF thumbnail
  (IFD1), the MakerNote (camera previews live there), XMP with an embedded
  image (dropped whole) and IPTC / Photoshop resources (dropped whole).

In every mode the orientation tag goes (the pixels are written upright) and the
ICC profile stays (colour, not identity; imageio carries it). EXIF that cannot
be parsed is removed whole, never kept. EXIF is parsed and rewritten with
piexif; what is found beside it (segments, chunks, trailers) is read here from
the file's own bytes or from what Pillow reports.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Literal

import piexif
from PIL import Image, TiffImagePlugin

Mode = Literal["strip-identifying", "strip-all", "keep"]
MODES: tuple[Mode, ...] = ("strip-identifying", "strip-all", "keep")

_I, _E = piexif.ImageIFD, piexif.ExifIFD

# strip-identifying keeps these and nothing else (an allowlist: unknown tags go too).
KEEP_IFD0 = frozenset({_I.Make, _I.Model, _I.DateTime})
KEEP_EXIF = frozenset({
    _E.ExifVersion, _E.ExposureTime, _E.FNumber, _E.ExposureProgram, _E.ISOSpeedRatings, _E.SensitivityType,
    _E.RecommendedExposureIndex, _E.ShutterSpeedValue, _E.ApertureValue, _E.BrightnessValue,
    _E.ExposureBiasValue, _E.MaxApertureValue, _E.MeteringMode, _E.LightSource, _E.Flash, _E.FocalLength,
    _E.FocalLengthIn35mmFilm, _E.ExposureMode, _E.WhiteBalance, _E.DigitalZoomRatio, _E.SceneCaptureType,
    _E.GainControl, _E.Contrast, _E.Saturation, _E.Sharpness, _E.SubjectDistanceRange, _E.SensingMethod,
    _E.DateTimeOriginal, _E.DateTimeDigitized, _E.OffsetTime, _E.OffsetTimeOriginal, _E.OffsetTimeDigitized,
    _E.SubSecTime, _E.SubSecTimeOriginal, _E.SubSecTimeDigitized, _E.ColorSpace,
    _E.PixelXDimension, _E.PixelYDimension, _E.LensSpecification, _E.LensModel,
})

# Layout of the image itself, rewritten by the encoder: never carried over, never reported.
# (The ICC profile, InterColorProfile, is carried by imageio in every mode.)
_STRUCTURE = frozenset({
    *(getattr(_I, name) for name in (
        "NewSubfileType", "SubfileType", "ImageWidth", "ImageLength", "BitsPerSample", "Compression",
        "PhotometricInterpretation", "Threshholding", "FillOrder", "StripOffsets", "SamplesPerPixel",
        "RowsPerStrip", "StripByteCounts", "XResolution", "YResolution", "PlanarConfiguration", "ResolutionUnit",
        "Predictor", "ColorMap", "TileWidth", "TileLength", "TileOffsets", "TileByteCounts", "ExtraSamples",
        "SampleFormat", "JPEGInterchangeFormat", "JPEGInterchangeFormatLength", "YCbCrCoefficients",
        "YCbCrSubSampling", "YCbCrPositioning", "ReferenceBlackWhite", "InterColorProfile", "ExifTag", "GPSTag")),
    280, 281,  # MinSampleValue, MaxSampleValue (not in piexif)
    _E.InteroperabilityTag, _E.ComponentsConfiguration, _E.FlashpixVersion,
})
_XMP_TAG, _IPTC_TAG, _PHOTOSHOP_TAG = 700, 33723, 34377
_NAMES = {_XMP_TAG: "XMP", _IPTC_TAG: "IPTC", _PHOTOSHOP_TAG: "Photoshop", 37724: "ImageSourceData"}

# XMP that embeds a picture: xmp:Thumbnails (xmpGImg), Google's depth map / portrait originals.
_XMP_PICTURES = re.compile(rb"xmpGImg|ns\.adobe\.com/xap/1\.0/g/img/|Thumbnails|GImage|GDepth|GContainer|"
                           rb"ns\.google\.com/photos/1\.0/(image|depthmap|container)")
_XMP_ORIENTATION = re.compile(rb'\s*tiff:Orientation="[0-9]"|<tiff:Orientation>[0-9]</tiff:Orientation>')


@dataclass(frozen=True)
class Found:
    """The metadata an input carries, as read; nothing decided yet."""

    exif: bytes | None = None  # TIFF-structured EXIF (no "Exif\0\0" header); a TIFF file's own bytes
    xmp: bytes | None = None
    comment: bytes | None = None
    others: tuple[str, ...] = ()  # everything else found (IPTC, PNG:Software, Trailer...): dropped in every mode


@dataclass(frozen=True)
class Stripped:
    """What to write, and the names of what was left out (for the report and provenance)."""

    exif: bytes | None  # "Exif\0\0" + TIFF, ready for Pillow's ``exif=``; None: write no EXIF
    xmp: bytes | None = None  # keep mode only
    comment: bytes | None = None  # keep mode only
    removed: tuple[str, ...] = ()  # tag names: GPSInfo, MakerNote, BodySerialNumber, XMP, IPTC, Thumbnail...
    notes: tuple[str, ...] = ()


def strip(found: Found, mode: Mode, size: tuple[int, int] | None = None) -> Stripped:
    """What of ``found`` may be written under ``mode``.

    ``size`` (width, height) of the output corrects the EXIF pixel dimensions when kept.
    """
    if mode not in MODES:
        raise ValueError(f"metadata mode {mode!r} is not one of {', '.join(MODES)}")
    exif, removed, notes = _strip_exif(found.exif, mode, size) if found.exif else (None, [], [])
    xmp = comment = None
    if found.xmp:
        if mode == "keep" and not _XMP_PICTURES.search(found.xmp):
            xmp = _XMP_ORIENTATION.sub(b"", found.xmp)  # the pixels are written upright
        else:
            removed.append("XMP")
            if mode == "keep":
                notes.append("XMP removed whole: it embeds a picture (thumbnail or depth image)")
    if found.comment:
        if mode == "keep":
            comment = found.comment
        else:
            removed.append("Comment")
    removed += found.others
    if xmp is not None:  # a TIFF's XMP is also its tag 700, named above
        removed = [name for name in removed if name != "XMP"]
    return Stripped(exif, xmp, comment, tuple(dict.fromkeys(removed)), tuple(notes))


def found_in(im: Image.Image, data: bytes) -> Found:
    """The metadata of ``im``, opened by Pillow from the file bytes ``data``."""
    fmt = im.format
    exif = data if fmt == "TIFF" else im.info.get("exif")
    if isinstance(exif, bytes) and exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    try:
        others = _others(im, data)
    except (struct.error, IndexError, ValueError):  # only the names suffer: none of it is ever written
        others = ["unparsed metadata"]
    xmp, comment = im.info.get("xmp"), im.info.get("comment")
    return Found(exif or None, xmp if isinstance(xmp, bytes) and xmp else None,
                 comment if isinstance(comment, bytes) and comment else None, tuple(dict.fromkeys(others)))


def _others(im: Image.Image, data: bytes) -> list[str]:
    if im.format in ("JPEG", "MPO"):
        return _jpeg_others(getattr(im, "applist", []), data)
    if im.format == "PNG":
        return _png_others(data)
    if im.format == "WEBP":
        return _webp_others(data)
    if im.format == "TIFF" and isinstance(im, TiffImagePlugin.TiffImageFile) and _PHOTOSHOP_TAG in im.tag_v2:
        return _photoshop_names(_as_bytes(im.tag_v2[_PHOTOSHOP_TAG]))
    if im.format == "HEIF":
        return [name for key, name in (("thumbnails", "HEIF:Thumbnail"), ("depth_images", "HEIF:DepthImage"),
                                       ("aux", "HEIF:AuxiliaryImage")) if im.info.get(key)]
    return []


def _as_bytes(value: object) -> bytes:
    """A TIFF tag's bytes as Pillow gives them: bytes, a tuple of bytes or a tuple of ints."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, tuple) and all(isinstance(v, bytes) for v in value):
        return b"".join(value)
    return bytes(value) if isinstance(value, tuple) else b""


# --- EXIF ----------------------------------------------------------------------------------------


def _strip_exif(tiff: bytes, mode: Mode, size: tuple[int, int] | None) -> tuple[bytes | None, list[str], list[str]]:
    try:
        present = _ifd_tags(tiff)
        loaded = piexif.load(b"Exif\0\0" + tiff)
    except Exception as exc:  # noqa: BLE001 - whatever the parser raises (even MemoryError), the EXIF goes whole
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
        return None, ["EXIF"], [f"EXIF could not be parsed ({reason}): all of it removed"]
    if mode == "strip-all":
        kept: dict = {"0th": {}, "Exif": {}, "GPS": {}, "Interop": {}}
    elif mode == "strip-identifying":
        kept = {"0th": {t: v for t, v in loaded["0th"].items() if t in KEEP_IFD0},
                "Exif": {t: v for t, v in loaded["Exif"].items() if t in KEEP_EXIF}, "GPS": {}, "Interop": {}}
    else:
        dropped = _STRUCTURE | {_I.Orientation, _XMP_TAG, _PHOTOSHOP_TAG}
        kept = {"0th": {t: v for t, v in loaded["0th"].items() if t not in dropped},
                "Exif": {t: v for t, v in loaded["Exif"].items() if t not in _STRUCTURE and t != _E.MakerNote},
                "GPS": dict(loaded["GPS"]), "Interop": dict(loaded["Interop"])}
    if size is not None:
        for tag, value in ((_E.PixelXDimension, size[0]), (_E.PixelYDimension, size[1])):
            if tag in kept["Exif"]:
                kept["Exif"][tag] = value
    notes = []
    for ifd, tags in kept.items():
        for tag in [t for t, v in tags.items() if not _dumpable(ifd, t, v)]:
            del tags[tag]
            notes.append(f"EXIF {_tag_name(ifd, tag)} could not be rewritten: removed")
    removed = _removed_names(present, kept)
    if not any(kept.values()):
        return None, removed, notes
    try:
        return piexif.dump(kept), removed, notes
    except Exception as exc:  # noqa: BLE001 - a tag set piexif cannot write is not written at all
        return None, ["EXIF"], [*notes, f"EXIF could not be rewritten ({type(exc).__name__}): all of it removed"]


def _ifd_tags(tiff: bytes) -> dict[str, set[int]]:
    """The tag ids in each IFD, read strictly: a pointer past the end raises."""
    if tiff[:4] not in (b"II*\0", b"MM\0*"):
        raise ValueError("no TIFF header")
    order = "<" if tiff[:2] == b"II" else ">"

    def entries(offset: int) -> dict[int, int]:
        (count,) = struct.unpack_from(order + "H", tiff, offset)
        if offset < 8 or offset + 2 + 12 * count > len(tiff):
            raise ValueError(f"IFD at {offset} runs past the end")
        return {struct.unpack_from(order + "H", tiff, offset + 2 + 12 * i)[0]:
                struct.unpack_from(order + "L", tiff, offset + 10 + 12 * i)[0] for i in range(count)}

    (first,) = struct.unpack_from(order + "L", tiff, 4)
    ifd0 = entries(first)
    next_at = first + 2 + 12 * struct.unpack_from(order + "H", tiff, first)[0]
    # The pointer to IFD1 may be missing when nothing follows (piexif writes none after sub-IFDs).
    next_ifd = struct.unpack_from(order + "L", tiff, next_at)[0] if next_at + 4 <= len(tiff) else 0
    found = {"0th": set(ifd0), "Exif": set(), "GPS": set(), "Interop": set(), "1st": set()}
    if _I.ExifTag in ifd0:
        exif = entries(ifd0[_I.ExifTag])
        found["Exif"] = set(exif)
        if _E.InteroperabilityTag in exif:
            found["Interop"] = set(entries(exif[_E.InteroperabilityTag]))
    if _I.GPSTag in ifd0:
        found["GPS"] = set(entries(ifd0[_I.GPSTag]))
    if next_ifd:
        found["1st"] = set(entries(next_ifd))
    return found


def _dumpable(ifd: str, tag: int, value: object) -> bool:
    try:
        piexif.dump({ifd: {tag: value}})
    except Exception:  # noqa: BLE001 - piexif raises many kinds for a value it cannot encode
        return False
    return True


def _removed_names(present: dict[str, set[int]], kept: dict[str, dict]) -> list[str]:
    names = []
    for ifd in ("0th", "Exif"):
        names += [_tag_name(ifd, t) for t in sorted(present[ifd] - set(kept[ifd]) - _STRUCTURE)]
    if present["GPS"] and not kept["GPS"]:
        names.append("GPSInfo")
    if present["1st"]:
        names.append("Thumbnail")
    return names


def _tag_name(ifd: str, tag: int) -> str:
    if ifd == "0th" and tag in _NAMES:
        return _NAMES[tag]
    known = piexif.TAGS["Image" if ifd in ("0th", "1st") else ifd].get(tag)
    return known["name"] if known else f"EXIF:0x{tag:04X}"


# --- what else a file carries ------------------------------------------------------------------


def _jpeg_others(applist: list[tuple[str, bytes]], data: bytes) -> list[str]:
    names, seen_exif, seen_xmp = [], False, False
    for marker, body in applist:
        if marker == "APP1" and body.startswith(b"Exif\0"):
            names += ["APP1:Exif"] if seen_exif else []
            seen_exif = True
        elif marker == "APP1" and body.startswith(b"http://ns.adobe.com/xap/1.0/\0"):
            names += ["APP1:XMP"] if seen_xmp else []
            seen_xmp = True
        elif marker == "APP1" and body.startswith(b"http://ns.adobe.com/xmp/extension/"):
            names.append("XMP extension")
        elif marker == "APP0" and (body.startswith(b"JFXX") or (body.startswith(b"JFIF") and body[12:14] != b"\0\0")):
            names.append("JFIF:Thumbnail")
        elif marker == "APP2" and body.startswith(b"MPF\0"):
            names.append("MPF")
        elif marker == "APP13":
            names += _photoshop_names(body)
        elif marker not in ("APP0", "APP14", "COM") and not (marker == "APP2" and body.startswith(b"ICC_PROFILE")):
            names.append(marker)
    if _jpeg_trailer(data):
        names.append("Trailer")
    return names


_ENTROPY_END = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")


def _jpeg_trailer(data: bytes) -> int:
    """How many bytes follow the first image's end (a motion-photo video, an MPO's other frames)."""
    i = 2
    try:
        while data[i] == 0xFF:
            while data[i + 1] == 0xFF:
                i += 1
            marker = data[i + 1]
            if marker == 0xD9:
                return len(data[i + 2:].strip(b"\0"))
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            i += 2 + struct.unpack_from(">H", data, i + 2)[0]
            if marker == 0xDA:
                match = _ENTROPY_END.search(data, i)
                if match is None:
                    return 0
                i = match.end() - 2
    except (IndexError, struct.error):
        pass
    return 0


def _photoshop_names(body: bytes) -> list[str]:
    """IPTC and thumbnails among Photoshop image resources (APP13 / TIFF tag 34377)."""
    data = body[14:] if body.startswith(b"Photoshop 3.0\0") else body
    names, i = [], 0
    try:
        while data[i:i + 4] in (b"8BIM", b"PHUT", b"AgHg", b"DCSR"):
            resource = struct.unpack_from(">H", data, i + 4)[0]
            i += 6 + ((data[i + 6] + 2) & ~1)
            length = struct.unpack_from(">L", data, i)[0]
            i += 4 + length + (length & 1)
            names.append({0x0404: "IPTC", 0x0409: "Photoshop:Thumbnail", 0x040C: "Photoshop:Thumbnail"}
                         .get(resource, "Photoshop"))
    except (IndexError, struct.error):
        names.append("Photoshop")
    return list(dict.fromkeys(names)) or ["Photoshop"]


_PNG_KEPT = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"sBIT", b"pHYs",
             b"bKGD", b"hIST", b"eXIf", b"acTL", b"fcTL", b"fdAT"}


def _png_others(data: bytes) -> list[str]:
    names, i = [], 8
    while i + 8 <= len(data):
        length, kind = struct.unpack_from(">L4s", data, i)
        body = data[i + 8:i + 8 + length]
        i += 12 + length
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword = body.split(b"\0", 1)[0].decode("latin-1")
            if not (kind == b"iTXt" and keyword == "XML:com.adobe.xmp"):  # that one is Pillow's info["xmp"]
                names.append(f"PNG:{keyword}")
        elif kind not in _PNG_KEPT:
            names.append(f"PNG:{kind.decode('latin-1')}")
        if kind == b"IEND":
            break
    if len(data[i:].strip(b"\0")):
        names.append("Trailer")
    return names


_WEBP_KEPT = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ICCP", b"ANIM", b"ANMF", b"EXIF", b"XMP "}


def _webp_others(data: bytes) -> list[str]:
    end = min(len(data), 8 + struct.unpack_from("<L", data, 4)[0])
    names, i = [], 12
    while i + 8 <= end:
        kind, length = struct.unpack_from("<4sL", data, i)
        i += 8 + length + (length & 1)
        if kind not in _WEBP_KEPT:
            names.append(f"WebP:{kind.decode('latin-1').strip()}")
    if len(data[end:].strip(b"\0")):
        names.append("Trailer")
    return names


def webp_is_lossless(data: bytes) -> bool:
    """Whether a WebP file's image is VP8L (lossless); Pillow does not say."""
    i = 12
    while i + 8 <= len(data):
        kind, length = struct.unpack_from("<4sL", data, i)
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        i += 8 + length + (length & 1)
    return False
