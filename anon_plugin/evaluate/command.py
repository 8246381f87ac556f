"""``anon-plugin evaluate``: the click command (registered by anon_plugin.cli). Heavy modules load inside it."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click
from click.core import ParameterSource

from ..inference.registry import SALIENCY

STRENGTH_HELP = "small, medium, large (anon_plugin.inference.mask.STRENGTHS) or thresholds in [0, 1]"


def _split_list(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise click.BadParameter("give at least one name")
    return items


def _canonical(ctx, data_dir, split, identities, probes, methods, strengths, recognizer, seed, out_dir) -> str:
    """The command line that reproduces this run (every option that changes results, spelled out)."""
    words = ["anon-plugin", "evaluate", str(data_dir)]
    for flag, name, value in (("--split", "split", split), ("--identities", "identities", identities),
                              ("--probes", "probes", probes), ("--methods", "methods", methods),
                              ("--strengths", "strengths", strengths), ("--recognizer", "recognizer", recognizer),
                              ("--seed", "seed", seed), ("--out", "out_dir", out_dir)):
        if value is not None and (name == "out_dir" or ctx.get_parameter_source(name) != ParameterSource.DEFAULT):
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


@click.command("evaluate", context_settings={"show_default": True})
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default=None,
              help="Evaluate only the rows of labels.csv with this split (e.g. eval). Default: every row.")
@click.option("--identities", "-n", type=click.IntRange(1), default=None, show_default="all",
              help="Evaluate the first N identities (sorted) that have at least 2 images.")
@click.option("--probes", "-k", type=click.IntRange(1), default=3,
              help="Probes per identity: the images after the gallery image, sorted by path.")
@click.option("--methods", "-m", default=None,
              show_default="every method in anon_plugin.inference.fill.FILLERS, then generate+verify",
              help="Comma-separated fill methods, e.g. original,blur,pixelate,solid,inpaint,generate+verify. "
                   "NAME+verify is the fill with verification and its ladder (the default policy's engine is "
                   "generate+verify); a bare NAME is the fill alone. The original row is always included.")
@click.option("--strengths", "-s", default="small,medium,large",
              help=f"Comma-separated mask strengths: {STRENGTH_HELP}.")
@click.option("--recognizer", "-r", type=click.Choice(SALIENCY), default="sface",
              help="Recognizer whose Grad-CAM map decides the masks (SFace, FaceNet and dlib all judge).")
@click.option("--seed", type=int, default=0, help="Seed passed to the fill methods (generative fills).")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: results.json, results.md, examples.png and the cache (reruns reuse it).")
@click.option("--workers", "-j", type=click.IntRange(1), default=min(2, os.cpu_count() or 1),
              help="Worker processes (one CPU thread each).")
@click.option("--examples", type=click.IntRange(0), default=8, help="Probes shown in examples.png (0: none).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def evaluate_command(ctx, data_dir, split, identities, probes, methods, strengths, recognizer, seed, out_dir,
                     workers, examples, quiet):
    """Measure anonymization on the labeled face set in DATA_DIR, every method side by side.

    DATA_DIR holds labels.csv (path,identity[,split][,attributes...]). Per identity the first image
    (sorted by path) is the gallery, the next K are probes; every probe is anonymized by every method at
    every strength through the full pipeline and judged by SFace, FaceNet and dlib. Writes results.json,
    results.md and examples.png into --out. See docs/evaluation.md.
    """
    import time

    from ..errors import AnonPluginError
    from .run import EvalOptions, evaluate
    from .variants import Strength

    try:
        strength_list = _split_list(strengths)
        for s in strength_list:
            Strength.parse(s)
        method_list = _split_list(methods)
        options = EvalOptions(data_dir, out_dir, split, identities, probes, method_list, strength_list, recognizer,
                            seed, workers, not quiet, examples,
                            command=_canonical(ctx, data_dir, split, identities, probes, methods, strengths,
                                               recognizer, seed, out_dir))
        from .run import resolve_methods

        resolve_methods(method_list)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    start = time.perf_counter()
    try:
        results = evaluate(options)
    except AnonPluginError as exc:
        click.echo(f"anon-plugin: {exc}", err=True)
        ctx.exit(1)
    rows = results["rows"]
    failures = sum(len(r["failures"]) for r in rows[1:])
    click.echo(f"anon-plugin: {len(rows)} rows x {rows[0]['n_probes']} probes in {time.perf_counter() - start:.0f} s, "
               f"{failures} failed anonymizations; results in {out_dir / 'results.md'}", err=True)
evaluate = evaluate_command  # the name anon_plugin.cli registers
