"""``anon-plugin anonymize`` and ``anon-plugin explain``: the engine on files, outside the daemon.

Heavy modules (torch, OpenCV, dlib) are imported inside the commands, so
``anon-plugin anonymize --help`` answers at once.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import AnonPluginError
from ..policies import DEFAULT, METADATA, METHODS, OUTPUT_FORMATS, RECOGNIZERS, STRENGTHS
from . import Failure, Refusal, describe, log_warnings, say, unexpected

if TYPE_CHECKING:
    from .files import Outcome, PlannedFile

METADATA_MODES = (*METADATA, "keep")  # the CLI alone may keep metadata (metadata.MODES)


def _pipeline_options(command):
    """Options shared by every command that runs the pipeline."""
    options = [
        click.option("--method", "-m", type=click.Choice(METHODS), default=DEFAULT.method, show_default=True,
                     help="How the masked region is filled."),
        click.option("--strength", "-s", type=click.Choice(STRENGTHS), default=DEFAULT.strength, show_default=True,
                     help="Mask size preset (attention-map thresholds 0.6 / 0.4 / 0.2)."),
        click.option("--threshold", "-t", type=click.FloatRange(0.0, 1.0), default=None,
                     help="Attention-map threshold in [0, 1], overrides --strength; higher = smaller mask."),
        click.option("--recognizer", "-r", type=click.Choice(RECOGNIZERS), default=DEFAULT.recognizer,
                     show_default=True, help="Face recognizer whose Grad-CAM map decides the mask."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed for generative fills (same seed, same output)."),
        click.option("--detect-threshold", type=click.FloatRange(0.0, 1.0), default=0.6, show_default=True,
                     help="Minimum detector confidence for a face (lower finds more faces)."),
        click.option("--verify/--no-verify", default=DEFAULT.verify, show_default=True,
                     help="Check every anonymized face with SFace and FaceNet; while one is still too close to "
                          "its original, redraw it, enlarge its mask, then pixelate its box "
                          "(docs/verification.md)."),
        click.option("--max-pixels", type=click.IntRange(1), default=100_000_000, show_default=True,
                     help="Refuse images with more pixels than this (decompression bombs)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _anonymizer(method, strength, threshold, recognizer, seed, detect_threshold, verify, measure=False):
    from ..inference.pipeline import Anonymizer

    return Anonymizer(method=method, strength=strength, threshold=threshold, recognizer=recognizer,
                      seed=seed, detect_threshold=detect_threshold, verify=verify, measure=measure)
@click.command("anonymize")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", "-o", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; mirrors the input tree (same names, formats and sizes).")
@_pipeline_options
@click.option("--explain", is_flag=True, help="Also write NAME.explain.png: crop | attention map | mask | result.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a JSON report (faces, masks, before/after similarity per recognizer, metadata removed). "
                   "An existing file is kept unless --overwrite.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files and report.")
@click.option("--metadata", type=click.Choice(METADATA_MODES), default="strip-all", show_default=True,
              help="strip-all: nothing but the ICC colour profile; strip-identifying: only camera make and model, "
                   "exposure, lens model and dates; keep: EXIF (GPS included), XMP and comments, never a "
                   "thumbnail, maker note or IPTC. See docs/metadata.md.")
@click.option("--keep-metadata", is_flag=True, help="Same as --metadata keep.")
@click.option("--output-format", type=click.Choice(OUTPUT_FORMATS), default="same", show_default=True,
              help="same: the input's format (HEIC stays HEIC); jpeg: a JPEG named NAME.jpg.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90, show_default=True,
              help="Quality of JPEGs made from other formats (a JPEG input keeps its own tables).")
@click.pass_context
def anonymize_command(ctx, inputs, outdir, method, strength, threshold, recognizer, seed, detect_threshold,
                      verify, max_pixels, explain, report, overwrite, metadata, keep_metadata, output_format,
                      jpeg_quality):
    """Anonymize every face in INPUTS (files or folders, recursively) into the --output folder.

    Inside a folder, hidden files, other formats and unreadable folders are
    named on stderr as skipped. Exit code 0: all done; 1: some inputs failed
    or were skipped, or some face had to be covered by pixelation; 2: usage
    error, or --report names an existing file without --overwrite (nothing done).
    """
    start = time.perf_counter()
    log_warnings(ctx)
    if keep_metadata:
        if ctx.get_parameter_source("metadata") is click.core.ParameterSource.COMMANDLINE and metadata != "keep":
            raise click.UsageError(f"--keep-metadata conflicts with --metadata {metadata}")
        metadata = "keep"
    if report is not None and not overwrite and (report.exists() or report.is_symlink()):
        raise Refusal(f"report: {report} exists (use --overwrite)")
    from .files import plan, process

    planned = plan(list(inputs), outdir, overwrite, explain, output_format)
    for skipped in planned.skipped:
        say(f"{skipped.path}: skipped: {skipped.reason}")
    outcomes = list(planned.refused)
    for refused in outcomes:
        say(f"{refused.job.source}: {refused.error}")
    anonymizer = _anonymizer(method, strength, threshold, recognizer, seed, detect_threshold, verify,
                             measure=report is not None)
    with click.progressbar(planned.jobs, label="anonymizing", file=sys.stderr, show_pos=True,
                           item_show_func=lambda j: j.source.name if j else None,
                           hidden=len(planned.jobs) < 2) as bar:
        work = functools.partial(process, anonymizer=anonymizer, max_pixels=max_pixels, metadata=metadata,
                                 output_format=output_format, jpeg_quality=jpeg_quality, explain=explain,
                                 overwrite=overwrite)
        for job in bar:
            outcome = _guarded(ctx, work, job)
            if outcome.error:
                say(f"{job.source}: {outcome.error}")
            elif not outcome.ok:
                for face in outcome.result.faces:
                    if face.covered:
                        say(f"{job.source}: a face was pixelated instead ({face.error})")
            for note in outcome.notes:
                say(f"{job.source}: note: {note}")
            if outcome.result is not None:
                _warn_still_matched(job.source, outcome.result.faces)
            outcomes.append(outcome)
    reported = True
    if report is not None:
        from ..errors import OutputError
        from .report import write_report

        options = {"method": method, "strength": strength, "threshold": anonymizer.threshold,
                   "recognizer": recognizer, "seed": seed, "verify": verify, "metadata": metadata,
                   "output_format": output_format, "jpeg_quality": jpeg_quality}
        try:
            write_report(report, outcomes, options, planned.skipped, overwrite=overwrite)
        except OutputError as exc:
            say(f"report: {describe(exc)}")
            reported = False
    done = [o for o in outcomes if o.result is not None]
    faces = sum(len(o.result.faces) for o in done)
    covered = sum(o.result.failed_faces for o in done)
    failed = sum(o.error is not None for o in outcomes)
    say(f"{len(done)} images, {faces} faces ({covered} covered), {failed} failed, {len(planned.skipped)} skipped, "
        f"{time.perf_counter() - start:.1f} s")
    ctx.exit(0 if reported and not planned.skipped and all(o.ok for o in outcomes) else 1)


def _warn_still_matched(source: Path, faces) -> None:
    """With --report every face is measured: say which ones a recognizer still matches."""
    from ..inference.recognition import still_matched_by

    for index, face in enumerate(faces, 1):
        matched = still_matched_by(face.similarity) if face.similarity else []
        if matched:
            say(f"{source}: face {index} still matches the original for {' and '.join(matched)}; "
                  "a larger --strength hides more")


def _guarded(ctx: click.Context, work: Callable[[PlannedFile], Outcome], job: PlannedFile) -> Outcome:
    """Run one file's work; an unexpected error fails that file, not the run."""
    from .files import Outcome

    try:
        return work(job)
    except Exception as exc:
        if ctx.obj["debug"]:
            raise
        return Outcome(job, error=unexpected(exc))


@click.command("explain")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--output", "-o", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the PNG.")
@_pipeline_options
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@click.pass_context
def explain_command(ctx, image, out, method, strength, threshold, recognizer, seed, detect_threshold, verify,
                    max_pixels, overwrite):
    """Write the explain picture of IMAGE: per face, crop | ID attention map | mask | result."""
    from ..atomic import write_atomic
    from ..imageio import png_bytes, read_picture
    from ..inference.explain import explain_picture

    log_warnings(ctx)
    try:
        picture = read_picture(image, max_pixels)
        result = _anonymizer(method, strength, threshold, recognizer, seed, detect_threshold,
                             verify).anonymize(picture.rgb)
        write_atomic(out, png_bytes(explain_picture(result.faces, result.image)), overwrite)
    except AnonPluginError as exc:
        raise Failure(f"{image}: {describe(exc)}") from exc
    except Exception as exc:
        if ctx.obj["debug"]:
            raise
        raise Failure(f"{image}: {unexpected(exc)}") from exc
    say(f"{len(result.faces)} faces, explain picture in {out}")
    ctx.exit(1 if result.failed_faces else 0)
