"""Many files in, a mirrored tree out: planning outputs and processing one file.

The library raises; this module turns each file's failure into an Outcome so
that one bad file never stops the others, and every file or folder of an input
folder that is not processed into a SkippedInput with its reason: nothing is
passed over in silence.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import AnonPluginError, InputError
from ..formats import PHOTO_SUFFIXES
from ..atomic import write_atomic
from ..imageio import DEFAULT_JPEG_QUALITY, OutputFormat, encode, png_bytes, read_picture
from ..inference.pipeline import Anonymizer, Result
from ..metadata import Mode
from . import describe


@dataclass(frozen=True)
class PlannedFile:
    """An input file and where its anonymized copy goes."""

    source: Path
    target: Path


@dataclass(frozen=True)
class Outcome:
    job: PlannedFile
    result: Result | None = None
    error: str | None = None
    seconds: float = 0.0
    removed: tuple[str, ...] = ()  # metadata left out of the output (see anon_plugin.metadata)
    notes: tuple[str, ...] = ()  # what the output could not keep of the input's format

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.failed_faces == 0


@dataclass(frozen=True)
class SkippedInput:
    """A file or folder inside an input folder that is not processed, and why."""

    path: Path
    reason: str  # "hidden file", "not a supported image format (.xyz)", "folder cannot be read (...)"


@dataclass(frozen=True)
class Plan:
    jobs: tuple[PlannedFile, ...]
    refused: tuple[Outcome, ...]  # inputs that cannot be processed (missing, collisions, existing outputs)
    skipped: tuple[SkippedInput, ...]  # what an input folder holds besides images


def _unreadable(error: OSError) -> str:
    return f"folder cannot be read ({(error.strerror or str(error)).lower()})"


def _walk(folder: Path, skip: Path) -> tuple[list[Path], list[SkippedInput]]:
    found: list[Path] = []
    skipped: list[SkippedInput] = []

    def refused(error: OSError) -> None:
        skipped.append(SkippedInput(Path(error.filename or folder), _unreadable(error)))

    for root, dirs, files in os.walk(folder, onerror=refused):
        visible = []
        for d in sorted(dirs):
            path = Path(root, d)
            if path.resolve() == skip:
                continue  # our own output folder
            if d.startswith("."):
                skipped.append(SkippedInput(path, "hidden folder"))
            elif path.is_symlink():
                skipped.append(SkippedInput(path, "link to a folder (not followed)"))
            else:
                visible.append(d)
        dirs[:] = visible
        for name in sorted(files):
            path = Path(root, name)
            suffix = Path(name).suffix.lower()
            if name.endswith(".explain.png"):
                continue  # our own explain pictures
            if name.startswith("."):
                skipped.append(SkippedInput(path, "hidden file"))
            elif suffix not in PHOTO_SUFFIXES:
                skipped.append(SkippedInput(path, f"not a supported image format ({suffix or 'no suffix'})"))
            else:
                found.append(path)
    return found, skipped


def output_name(source: Path, output_format: OutputFormat = "same") -> str:
    """The output's file name: the input's, with .jpg for a JPEG made from another format."""
    if output_format == "jpeg" and source.suffix.lower() not in (".jpg", ".jpeg"):
        return source.stem + ".jpg"
    return source.name


def plan(
    inputs: list[Path], outdir: Path, overwrite: bool = False, explain: bool = False,
    output_format: OutputFormat = "same",
) -> Plan:
    """Jobs for every image under ``inputs``, the inputs refused up front and what folders hold besides.

    A file goes to OUTDIR/name; a folder's images go to OUTDIR/<path inside the
    folder>. The output folder itself is never read as input. With
    ``output_format="jpeg"`` the outputs' suffix becomes .jpg.
    """
    out = outdir.resolve()
    jobs: list[PlannedFile] = []
    refused: list[Outcome] = []
    skipped: list[SkippedInput] = []
    claimed: dict[Path, Path] = {}
    for item in inputs:
        if item.is_dir():
            found, passed = _walk(item, out)
            skipped += passed
            pairs = [(f, (out / f.relative_to(item)).with_name(output_name(f, output_format))) for f in found]
        elif item.exists() or item.is_symlink():
            pairs = [(item, out / output_name(item, output_format))]
        else:
            refused.append(Outcome(PlannedFile(item, out / item.name), error="no such file or folder"))
            continue
        for source, target in pairs:
            job = PlannedFile(source, target)
            if target in claimed:
                refused.append(Outcome(job, error=f"{claimed[target]} already writes {target}"))
            elif target == source.resolve() and not overwrite:
                refused.append(Outcome(job, error="the output would replace the original (use --overwrite)"))
            elif not overwrite and (target.exists() or (explain and explain_path(target).exists())):
                existing = target if target.exists() else explain_path(target)
                refused.append(Outcome(job, error=f"{existing} exists (use --overwrite)"))
            else:
                claimed[target] = source
                jobs.append(job)
    return Plan(tuple(jobs), tuple(refused), tuple(skipped))


def explain_path(target: Path) -> Path:
    return target.with_name(target.stem + ".explain.png")


def process(
    job: PlannedFile,
    anonymizer: Anonymizer,
    *,
    max_pixels: int,
    metadata: Mode = "strip-all",
    output_format: OutputFormat = "same",
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    explain: bool = False,
    overwrite: bool = False,
) -> Outcome:
    """Anonymize one file and write it (and its explain picture) atomically.

    ``metadata``, ``output_format`` and ``jpeg_quality`` as in imageio.encode."""
    start = time.perf_counter()
    try:
        if not job.source.is_file():
            raise InputError("not a regular file")
        picture = read_picture(job.source, max_pixels)
        result = anonymizer.anonymize(picture.rgb)
        encoded = encode(picture, result.image, metadata, output_format=output_format, jpeg_quality=jpeg_quality)
        write_atomic(job.target, encoded.data, overwrite)
        if explain:
            from ..inference.explain import explain_picture

            panel = png_bytes(explain_picture(result.faces, result.image))
            write_atomic(explain_path(job.target), panel, overwrite)
    except AnonPluginError as exc:
        return Outcome(job, error=describe(exc), seconds=time.perf_counter() - start)
    except MemoryError:
        return Outcome(job, error="out of memory (lower --max-pixels)", seconds=time.perf_counter() - start)
    return Outcome(job, result, seconds=time.perf_counter() - start, removed=encoded.removed, notes=encoded.notes)

