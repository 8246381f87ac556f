"""Many files in, a mirrored tree out: planning outputs and processing one file.

The library raises; this module turns each file's failure into an Outcome so
that one bad file never stops the others.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import AnonPluginError, InputError
from .imageio import SUFFIXES, encode, png_bytes, read_picture, write_atomic
from .inference.pipeline import Anonymizer, Result


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass(frozen=True)
class Outcome:
    job: Job
    result: Result | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.failed_faces == 0


def _walk(folder: Path, skip: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(root, d).resolve() != skip)
        found += [Path(root, f) for f in sorted(files) if f.lower().endswith(SUFFIXES) and not f.startswith(".")
                  and not f.endswith(".explain.png")]
    return found


def plan(
    inputs: list[Path], outdir: Path, overwrite: bool = False, explain: bool = False
) -> tuple[list[Job], list[Outcome]]:
    """Jobs for every image under ``inputs`` and the inputs refused up front.

    A file goes to OUTDIR/name; a folder's images go to OUTDIR/<path inside the
    folder>. The output folder itself is never read as input.
    """
    out = outdir.resolve()
    jobs: list[Job] = []
    refused: list[Outcome] = []
    claimed: dict[Path, Path] = {}
    for item in inputs:
        if item.is_dir():
            pairs = [(f, out / f.relative_to(item)) for f in _walk(item, out)]
        elif item.exists() or item.is_symlink():
            pairs = [(item, out / item.name)]
        else:
            refused.append(Outcome(Job(item, out / item.name), error="no such file or folder"))
            continue
        for source, target in pairs:
            job = Job(source, target)
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
    return jobs, refused


def explain_path(target: Path) -> Path:
    return target.with_name(target.stem + ".explain.png")


def process(
    job: Job,
    anonymizer: Anonymizer,
    *,
    max_pixels: int,
    keep_metadata: bool = False,
    explain: bool = False,
    overwrite: bool = False,
) -> Outcome:
    """Anonymize one file and write it (and its explain picture) atomically."""
    start = time.perf_counter()
    try:
        if not job.source.is_file():
            raise InputError("not a regular file")
        picture = read_picture(job.source, max_pixels)
        result = anonymizer.anonymize(picture.rgb)
        data = encode(picture, result.image, keep_metadata)
        write_atomic(job.target, data, overwrite)
        if explain:
            from .inference.explain import explain_picture

            panel = png_bytes(explain_picture(result.faces, result.image))
            write_atomic(explain_path(job.target), panel, overwrite)
    except AnonPluginError as exc:
        return Outcome(job, error=str(exc), seconds=time.perf_counter() - start)
    except MemoryError:
        return Outcome(job, error="out of memory (lower --max-pixels)", seconds=time.perf_counter() - start)
    return Outcome(job, result, seconds=time.perf_counter() - start)

