"""The whole evaluation: protocol -> jobs (in worker processes, cached) -> metrics per row -> outputs.

``evaluate(EvalOptions(...))`` returns the results.json dictionary and writes
results.json, results.md and examples.png into ``out_dir``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..inference import fill, verify
from ..inference.mask import iou
from . import calibrate, features, jobs, metrics, protocol, report, store
from .variants import VERIFIED, Strength, fill_of

ORIGINAL = store.ORIGINAL
RECOGNIZERS = ("sface", "facenet", "dlib")
DEFAULT_ENGINE = fill.DEFAULT_METHOD + VERIFIED  # the default policy's engine: generate, verified


@dataclass(frozen=True)
class EvalOptions:
    """What ``evaluate`` runs: the data set and its selection, the methods and strengths, how, and where to."""

    data_dir: Path
    out_dir: Path
    split: str | None = None
    identities: int | None = None  # None: all
    probes: int = 3
    methods: tuple[str, ...] | None = None  # fill methods; None: every one in fill.FILLERS. "original" is implied
    strengths: tuple[str, ...] = ("small", "medium", "large")
    recognizer: str = "sface"  # whose attention map decides the masks
    seed: int = 0
    workers: int = 1
    progress: bool = True
    examples: int = 8
    command: str | None = None  # how the run was started, stated in the outputs


def resolve_methods(methods: tuple[str, ...] | None) -> tuple[str, ...]:
    """Methods to evaluate, in order: fills from the registry, each alone or as ``NAME+verify``
    (``original`` is dropped: it is always there). None: every fill, then the verified default."""
    if methods is None:
        return (*fill.FILLERS, DEFAULT_ENGINE)
    chosen = []
    for m in methods:
        if m == ORIGINAL or m in chosen:
            continue
        fill.filler(fill_of(m)[0])  # raises with the valid names
        chosen.append(m)
    return tuple(chosen)


class _Progress:
    """click's progress bar on a terminal; on a pipe or a log file, a line every 5% (click prints only the label)."""

    def __init__(self, total: int, label: str, shown: bool):
        import click

        self.total, self.label, self.done, self.start = total, label, 0, time.perf_counter()
        self.tty = shown and sys.stderr.isatty()
        self.lines = shown and not self.tty and total > 0
        self.bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True,
                                     hidden=not self.tty or not total)
        self.step = max(1, total // 20)

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def update(self) -> None:
        self.done += 1
        self.bar.update(1)
        if self.lines and (self.done % self.step == 0 or self.done == self.total):
            elapsed = time.perf_counter() - self.start
            print(f"{self.label}: {self.done}/{self.total} ({elapsed:.0f} s)", file=sys.stderr, flush=True)


def _execute(work: list[jobs.EvalPhoto], workers: int, progress: bool, label: str) -> Iterator[jobs.EvalPhotoResult]:
    """Run the jobs (in ``workers`` processes when > 1), yielding results as they finish, with a progress bar."""
    with _Progress(len(work), label, progress) as bar:
        if workers <= 1:
            import torch

            # One thread, as in the workers: on a shared 2-core machine two OpenMP threads spin
            # against other processes and run several times slower.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for job in work:
                    yield jobs.run(job)
                    bar.update()
            finally:
                torch.set_num_threads(threads)
            return
        import multiprocessing

        # spawn, not fork: a forked torch (OpenMP) runtime can hang in the child.
        with multiprocessing.get_context("spawn").Pool(workers, initializer=jobs.init_worker) as pool:
            for result in pool.imap_unordered(jobs.run, work, chunksize=1):
                yield result
                bar.update()


def _facenet_threshold(options: EvalOptions, labels: protocol.Labels, cache_dir: Path) -> dict[str, Any]:
    calibration = calibrate.jobs(options.data_dir, labels)
    if not calibration:
        return calibrate.fallback()
    path = calibrate.cache_path(cache_dir, calibration)
    cached = calibrate.load(path)
    if cached is not None:
        return cached
    results = {r.image: r for r in _execute(calibration, options.workers, options.progress, "FaceNet threshold")}
    measured = calibrate.measure(calibration, results, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(measured, indent=1))
    return measured


# --- aggregation ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    image: str
    subject: int
    labels: np.ndarray | None  # ground-truth attributes in the classifier's order


def _row_item(method: str, strength: str | None, original: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    if method != ORIGINAL:
        return item
    failed = not original["has_reference"]
    return {**original, "failed": failed, "reason": original.get("reason") if failed else None,
            "ssim": 1.0, "psnr": math.inf, "changed_area": 0.0, "seconds": None}


def _same(method: str, item: dict[str, Any], original: dict[str, Any], threshold: dict[str, float]) -> dict[str, bool]:
    """Does the anonymized face still match its own original photo, per recognizer?"""
    return {
        "sface": float(item["sface"] @ original["sface"]) >= threshold["sface"],
        "facenet": float(item["facenet"] @ original["facenet"]) > threshold["facenet"],
        "dlib": float(np.linalg.norm(item["dlib"] - original["dlib"])) < threshold["dlib"],
    }


def _row(method: str, strength: str | None, probes: list[Probe], items: dict, gallery: dict[str, Any],
         threshold: dict[str, float], attribute_key: str | None, attribute_columns: bool) -> dict[str, Any]:
    recognized: dict[str, list[bool]] = {r: [] for r in RECOGNIZERS}
    leaked: dict[str, list[bool]] = {r: [] for r in RECOGNIZERS}
    real, fake, correct, detected, ssim, psnr, changed, seconds, failures = [], [], [], [], [], [], [], [], []
    steps: list[set[str]] = []
    for p in probes:
        original = items[p.image][(ORIGINAL, None)]
        item = _row_item(method, strength, original, items[p.image][(method, strength)])
        if item["failed"]:
            failures.append({"path": p.image, "reason": item["reason"]})
            for r in RECOGNIZERS:
                recognized[r].append(True)
                leaked[r].append(True)
        else:
            same = _same(method, item, original, threshold)
            for r in RECOGNIZERS:
                nearest = metrics.top1(item[r][None], gallery[r]["embeddings"], "l2" if r == "dlib" else "cosine")[0]
                recognized[r].append(bool(gallery[r]["subjects"][nearest] == p.subject))
                leaked[r].append(bool(same[r]))
        if "facenet_features" in item and "facenet_features" in original:
            real.append(original["facenet_features"])
            fake.append(item["facenet_features"])
        if "detected" in item:
            detected.append(bool(item["detected"]))
        if attribute_columns and p.labels is not None and item.get("attribute_key") == attribute_key \
                and attribute_key is not None:
            correct.append(np.asarray(item["attributes"], bool) == p.labels)
        ssim.append(item["ssim"])
        psnr.append(item["psnr"])
        changed.append(item["changed_area"])
        if item["seconds"] is not None:
            seconds.append(item["seconds"] / max(int(item["n_faces"]), 1))
        steps.append({verify.rung(s) for s in (item.get("steps") or "").split()})
    enough = len(real) >= 2
    verified = fill_of(method)[1]
    return {
        "method": method,
        "strength": strength,
        "n_probes": len(probes),
        "recognition_rate": {r: float(np.mean(v)) for r, v in recognized.items()},
        "leak_rate": {r: float(np.mean(v)) for r, v in leaked.items()},
        "fid": metrics.fid(np.stack(real), np.stack(fake)) if enough else None,
        "kid": metrics.kid(np.stack(real), np.stack(fake))[0] if enough else None,
        "ssim": metrics.mean_or_none(ssim),
        "psnr": metrics.mean_or_none(psnr),
        "changed_area": metrics.mean_or_none(changed),
        "attribute_rate": float(np.mean(np.stack(correct).mean(0))) if correct else None,
        "detection_rate": float(np.mean(detected)) if detected else None,
        "seconds_per_face": metrics.mean_or_none(seconds),
        "failures": failures,
        "ladder": {r: float(np.mean([r in s for s in steps])) for r in verify.RUNGS[1:]} if verified else None,
    }


def _gallery(subjects: tuple[protocol.Subject, ...], items: dict) -> tuple[dict, list[dict[str, str]]]:
    """Per recognizer, the gallery embeddings of every subject whose gallery photo has a face."""
    rows, missing = [], []
    for k, s in enumerate(subjects):
        original = items[s.gallery.path][(ORIGINAL, None)]
        if original["has_reference"]:
            rows.append((k, original))
        else:
            missing.append({"path": s.gallery.path, "reason": original["reason"]})
    gallery = {r: {"subjects": np.array([k for k, _ in rows]), "embeddings": np.stack([o[r] for _, o in rows])}
               for r in RECOGNIZERS}
    return gallery, missing


def _mask_iou(subjects: tuple[protocol.Subject, ...], items: dict) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Medium masks (aligned crops): gallery vs first probe of one person, and across consecutive people."""
    pairs = []
    for s in subjects:
        a = items[s.gallery.path][(ORIGINAL, None)].get("medium_mask")
        b = items[s.probes[0].path][(ORIGINAL, None)].get("medium_mask")
        if a is not None and b is not None:
            pairs.append(tuple(store.unpack_mask(m, (256, 256)) for m in (a, b)))
    if len(pairs) < 2:
        return {"same": None, "different": None}, {"pairs": len(pairs)}
    n = len(pairs)
    same = np.array([iou(a, b) for a, b in pairs])
    different = np.array([iou(pairs[k][0], pairs[(k + 1) % n][1]) for k in range(n)])
    return ({"same": float(same.mean()), "different": float(different.mean())},
            {"pairs": n, "same_above_different": float(np.mean(same > different))})


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores, {platform.system()}, Python {platform.python_version()}"


# --- the run --------------------------------------------------------------------------------

def evaluate(options: EvalOptions) -> dict[str, Any]:
    start = time.perf_counter()
    methods = resolve_methods(options.methods)
    strengths = [Strength.parse(s) for s in options.strengths]
    strength_labels = list(dict.fromkeys(s.label for s in strengths))
    variants = tuple((m, s) for m in methods for s in strength_labels)
    labels = protocol.read_labels(options.data_dir)
    chosen = protocol.select(options.data_dir, options.split, options.identities, options.probes)
    attribute_key = features.attribute_model_key()
    classifier_names = features.attribute_names() if attribute_key else ()
    attribute_columns = bool(classifier_names) and set(classifier_names) <= set(labels.attribute_names)
    column = [labels.attribute_names.index(n) for n in classifier_names] if attribute_columns else []
    root = store.root(options.out_dir, options.data_dir, options.recognizer, options.seed)

    facenet = _facenet_threshold(options, labels, root.parent)
    threshold = {"sface": metrics.SFACE_THRESHOLD, "facenet": facenet["threshold"], "dlib": metrics.DLIB_THRESHOLD}

    def job(image: protocol.LabeledImage, role: str) -> jobs.EvalPhoto:
        return jobs.EvalPhoto(image.path, Path(options.data_dir) / image.path, role, options.recognizer, options.seed,
                        variants if role == jobs.PROBE else (), root, attribute_key)

    work = [job(p, jobs.PROBE) for _, p in chosen.probes] + [job(s.gallery, jobs.GALLERY) for s in chosen.subjects]
    items, rendered = {}, []
    for result in _execute(work, options.workers, options.progress, "evaluating"):
        items[result.image] = result.items
        rendered += [(result.image, *v) for v in result.rendered]

    probes = [Probe(p.path, k, p.attributes[column] if attribute_columns and p.attributes is not None else None)
              for k, p in chosen.probes]
    gallery, gallery_failures = _gallery(chosen.subjects, items)
    rows = [_row(ORIGINAL, None, probes, items, gallery, threshold, attribute_key, attribute_columns)]
    rows += [_row(m, s, probes, items, gallery, threshold, attribute_key, attribute_columns) for m, s in variants]
    mask_iou, mask_detail = _mask_iou(chosen.subjects, items)
    wall = time.perf_counter() - start
    results = {
        "dataset": str(options.data_dir),
        "split": options.split,
        "identities": len(chosen.subjects),
        "probes_per_identity": options.probes,
        "fid_network": features.FID_NETWORK,
        "facenet_threshold": facenet["threshold"],
        "mask_iou": mask_iou,
        "rows": rows,
        "details": {
            "command": options.command,
            "wall_seconds": round(wall, 1),
            "pipeline_runs": len(rendered),
            "workers": options.workers,
            "hardware": _hardware(),
            "saliency_recognizer": options.recognizer,
            "seed": options.seed,
            "thresholds": {
                "sface": f"same person if cosine >= {metrics.SFACE_THRESHOLD}",
                "facenet": f"same person if cosine > {facenet['threshold']} (0.1% FAR on train impostor pairs)",
                "dlib": f"same person if L2 distance < {metrics.DLIB_THRESHOLD}",
            },
            "facenet_calibration": facenet,
            "attribute_classifier": ({"weights_sha256_prefix": attribute_key, "attributes": len(classifier_names)}
                                     if attribute_columns else None),
            "kid": {"kernel": "(x.y / d + 1)^3", "estimator": "unbiased MMD^2",
                    "subset_size": metrics.KID_SUBSET_SIZE, "subsets": metrics.KID_SUBSETS},
            "ssim": "luma (BT.601), Gaussian window 11x11 sigma 1.5, whole photo",
            "detection": "dlib HOG, upsample 1; found if a detection's box centre lies inside the original face box",
            "mask_iou": mask_detail,
            "gallery_failures": gallery_failures,
        },
    }
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    (out / "results.md").write_text(report.markdown(results))
    if options.examples:
        report.write_examples(out / "examples.png", options, chosen, items, methods, strength_labels, root)
    return results


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
