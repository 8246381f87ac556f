"""The work on one photo (a job): run in worker processes, cached per item in OUT_DIR.

A probe job yields the original item and one item per (method, strength);
a gallery job only the original item; a train job (FaceNet threshold) only
embeddings, uncached. Whatever is already in the cache is read, not
recomputed: a rerun with one more method runs the pipeline for that method
only (the shared stages run again for a photo only when one of its items is
missing).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..inference import landmarks, verify
from ..imageio import load_rgb
from ..inference.pipeline import Analysis, AnonymizerConfig
from . import features, metrics, store
from .variants import Strength, Variant, analyze, hole_mask, render

GALLERY, PROBE, TRAIN = "gallery", "probe", "train"
MASK_STRENGTH = Strength.parse("medium")  # mask consistency is measured on medium masks
# Item fields the main process needs; the photo patch and the variants' masks stay on disk.
_HEAVY = ("patch_png", "patch_origin", "hole_mask", "landmarks")
Key = tuple[str, str | None]  # an item's (method, strength label); (store.ORIGINAL, None) for the original


@dataclass(frozen=True)
class EvalPhoto:
    """One photo of the evaluation and what to do with it (a job of a worker process)."""

    image: str  # path relative to the data dir
    path: Path  # absolute path
    role: str  # GALLERY, PROBE or TRAIN
    recognizer: str = "sface"
    seed: int = 0
    variants: tuple[tuple[str, str], ...] = ()  # (method, strength label)
    cache_root: Path | None = None  # None: nothing is cached (train jobs)
    attribute_key: str | None = None  # the attribute classifier's checksum; None: not installed


@dataclass
class EvalPhotoResult:
    """What an ``EvalPhoto`` gave: its items, and the variants the pipeline ran for (not read from the cache)."""

    image: str
    items: dict[Key, dict[str, Any]]  # (method, strength) -> item; ("original", None)
    rendered: list[tuple[str, str]] = field(default_factory=list)  # variants the pipeline ran for


def init_worker() -> None:
    """Worker processes use one thread each: the workers themselves fill the cores."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _reference(analysis: Analysis) -> tuple[features.Reference | None, str | None]:
    """The first (most confident) face's location, or why there is none."""
    if not analysis.faces:
        return None, "no face found on the original photo"
    face = analysis.faces[0]
    if face.alignment is None:
        return None, f"the original face cannot be located ({face.error})"
    assert face.landmarks is not None, "a face is aligned on its landmarks"
    return features.Reference(face.box, face.landmarks, face.alignment), None


def _reference_of(item: dict[str, Any]) -> features.Reference | None:
    if not item["has_reference"]:
        return None
    return features.Reference(item["box"], item["landmarks"], item["alignment"])


def locate(rgb: np.ndarray, config: AnonymizerConfig) -> features.Reference | None:
    """The reference face without the attention map (train photos): detect, landmarks, align."""
    found = landmarks.locate(rgb, config.detect_threshold, config.max_detect_side)
    if found is None:
        return None
    face, points, alignment = found
    return features.Reference(face.box, points, alignment.matrix)


def _variant(analysis: Analysis, method: str, strength: Strength, job: EvalPhoto) -> tuple[Variant, float]:
    """The anonymized photo and its end-to-end seconds (the analysis is shared by every variant)."""
    variant = render(analysis, method, strength, job.recognizer, job.seed)
    return variant, analysis.seconds["total"] + variant.seconds


def _measure(rgb: np.ndarray, outputs: list[np.ndarray], reference: features.Reference | None,
             role: str, attribute_key: str | None) -> list[dict[str, Any]]:
    """Judges' fields for each output photo at the reference face."""
    found: list[dict[str, Any]] = [{} for _ in outputs]
    if reference is None or not outputs:
        return found
    embeddings, crops = features.embed(outputs, reference)
    predictions = features.attributes(crops) if role == PROBE and attribute_key else None
    for i, out in enumerate(outputs):
        found[i].update(sface=embeddings.sface[i], facenet=embeddings.facenet[i],
                        facenet_features=embeddings.facenet_features[i], dlib=embeddings.dlib[i])
        if role == PROBE:
            found[i]["detected"] = features.hog_detects(out, reference.box)
        if predictions is not None:
            found[i].update(attributes=predictions[i], attribute_key=attribute_key)
    return found


def _original_item(rgb: np.ndarray, analysis: Analysis, job: EvalPhoto) -> dict[str, Any]:
    reference, reason = _reference(analysis)
    item: dict[str, Any] = {"role": job.role, "n_faces": len(analysis.faces), "has_reference": reference is not None,
                            "reason": reason, "seconds": analysis.seconds["total"]}
    if reference is not None:
        item.update(box=reference.box, landmarks=reference.landmarks, alignment=reference.alignment)
        medium = hole_mask(analysis.faces[0], MASK_STRENGTH.threshold)
        if medium is not None and medium.any():
            item["medium_mask"] = store.pack_mask(medium)
        item.update(_measure(rgb, [rgb], reference, job.role, job.attribute_key)[0])
    return item


def _variant_item(rgb: np.ndarray, variant: Variant, seconds: float, reference: features.Reference | None,
                  reason: str | None) -> dict[str, Any]:
    out = variant.image
    if not variant.covered:
        failed, why = True, reason or "no face found"
    elif variant.covered[0] and not verify.gave_up(variant.errors[0]):
        failed, why = True, f"face covered (fail closed): {variant.errors[0]}"
    else:  # a face the ladder covered is judged as it would be published
        failed, why = False, None
    item: dict[str, Any] = {
        "failed": failed, "reason": why, "n_faces": len(variant.covered), "seconds": seconds,
        "steps": " ".join(variant.steps[0]) if variant.steps else None,
        "mask_area": variant.mask_areas[0] if variant.mask_areas else None,
        "ssim": metrics.ssim(rgb, out), "psnr": metrics.psnr(rgb, out), "changed_area": metrics.changed_area(rgb, out),
    }
    if variant.hole_masks and variant.hole_masks[0] is not None:
        item["hole_mask"] = store.pack_mask(variant.hole_masks[0])
    item.update(store.patch(rgb, out) or {})
    return item


def _refresh_attributes(rgb: np.ndarray, item: dict[str, Any], reference: features.Reference,
                        attribute_key: str) -> bool:
    """Add predictions of the current attribute classifier to a cached item; True if it changed."""
    if item.get("attribute_key") == attribute_key:
        return False
    crops = features.crops([store.output_image(rgb, item)], reference)
    item.update(attributes=features.attributes(crops)[0], attribute_key=attribute_key)
    return True


def run(job: EvalPhoto) -> EvalPhotoResult:
    """Compute (or read from the cache) every item of one photo."""
    rgb = load_rgb(job.path)
    config = AnonymizerConfig(recognizer=job.recognizer, seed=job.seed)
    result = EvalPhotoResult(job.image, {})
    if job.role == TRAIN:
        reference = locate(rgb, config)
        if reference is not None:
            crops = features.crops([rgb], reference)
            result.items[(store.ORIGINAL, None)] = {
                "sface": features.sface(crops)[0], "facenet": features.facenet(crops)[0][0]}
        return result

    root = job.cache_root
    assert root is not None, "only train jobs are uncached"
    keys: list[Key] = [(store.ORIGINAL, None), *job.variants]
    paths = {key: store.item_path(root, job.image, *key) for key in keys}
    cached = {key: store.load(path) for key, path in paths.items()}
    original = cached[(store.ORIGINAL, None)]
    if original is not None and (original.get("role") != job.role and job.role == PROBE):
        original = None  # computed as a gallery photo: lacks the probe's detection and attributes
    missing = [v for v in job.variants if cached[v] is None]
    items = {key: item for key, item in cached.items() if item is not None}
    dirty: set[Key] = set()

    analysis = functools.cache(functools.partial(analyze, rgb, config))  # run once, and only for a missing item
    if original is None:
        original = _original_item(rgb, analysis(), job)
        dirty.add((store.ORIGINAL, None))
    reference = _reference_of(original)

    outputs = []
    for method, label in missing:
        variant, seconds = _variant(analysis(), method, Strength.parse(label), job)
        result.rendered.append((method, label))
        items[(method, label)] = _variant_item(rgb, variant, seconds, reference, original.get("reason"))
        outputs.append(variant.image)
        dirty.add((method, label))
    for variant_key, found in zip(missing, _measure(rgb, outputs, reference, job.role, job.attribute_key), strict=True):
        items[variant_key].update(found)
    items[(store.ORIGINAL, None)] = original

    if job.role == PROBE and job.attribute_key and reference is not None:
        for key, item in items.items():
            if _refresh_attributes(rgb, item, reference, job.attribute_key):
                dirty.add(key)
    for key in dirty:
        store.save(paths[key], items[key])
    result.items = {key: {k: v for k, v in items[key].items() if k not in _HEAVY} for key in paths}
    return result


def run_timed(job: EvalPhoto) -> tuple[EvalPhotoResult, float]:
    start = time.perf_counter()
    result = run(job)
    return result, time.perf_counter() - start
