"""Many photos, each with its own options, through the pipeline at once.

Detection and landmarks run photo by photo (OpenCV and dlib, on the CPU).
The faces of all the photos then go through the attention map and the fill
together, grouped by recognizer and by method, ``device.faces_per_pass``
faces per network pass. A photo's result does not depend on the photos
beside it: on the CPU it is bit-identical whatever ``max_batch``.

Fail closed: when any stage fails for a detected face, that face's box is
pixelated and its record says why. No detected face leaves untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import align, blend, detect, fill, landmarks, mask, recognition, saliency
from ..errors import StageError
from ..imageio import load_rgb
from .device import faces_per_pass
from .records import Analysis, AnonymizerConfig, FaceRecord, Result

Image = str | Path | np.ndarray | object
Slot = tuple[int, int]  # (photo, face) index


@contextmanager
def _stage(name: str, seconds: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except StageError:
        raise
    except Exception as exc:  # any failure of a stage becomes a covered face
        raise StageError(name, f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


def _chunks(slots: list[Slot], key: Callable[[Slot], str], size: int) -> Iterator[tuple[str, list[Slot]]]:
    """Slots grouped by ``key``, in chunks of at most ``size``, in a fixed order."""
    groups: dict[str, list[Slot]] = {}
    for slot in slots:
        groups.setdefault(key(slot), []).append(slot)
    for name, members in groups.items():
        for i in range(0, len(members), size):
            yield name, members[i:i + size]


def _run_on_faces(
    faces: list[list[FaceRecord]], chunk: list[Slot], stage: str,
    work: Callable[[list[FaceRecord]], list[dict]],
) -> None:
    """Apply ``work`` to the faces at ``chunk`` in one call; it returns each face's new fields.

    Its time is shared equally among the faces; a failure covers them all.
    """
    records = [faces[p][f] for p, f in chunk]
    seconds: dict[str, float] = {}
    try:
        with _stage(stage, seconds):
            updates = work(records)
    except StageError as exc:
        updates = [dict(covered=True, error=str(exc))] * len(records)
    share = seconds[stage] / len(records)
    for (p, f), record, update in zip(chunk, records, updates):
        faces[p][f] = replace(record, **update, seconds={**record.seconds, stage: share})


def _locate_face(rgb: np.ndarray, face: detect.Detection) -> FaceRecord:
    """Landmarks, alignment, crop and eyebrow-to-chin region of one detected face."""
    found: dict = dict(box=face.box, detection_score=face.score, seconds={})
    seconds = found["seconds"]
    try:
        with _stage("landmarks", seconds):
            found["landmarks"], found["landmark_source"] = landmarks.face_landmarks(rgb, face)
        with _stage("align", seconds):
            alignment = align.align(landmarks.five_points(found["landmarks"]))
            found["alignment"] = alignment.matrix
            found["crop"] = align.warp(rgb, alignment.matrix, alignment.size)
            points = align.transform(alignment.matrix, found["landmarks"])
            found["region"] = mask.region_of_interest(points, alignment.size)
    except StageError as exc:
        return FaceRecord(**found, covered=True, error=str(exc))
    return FaceRecord(**found)


def analyze_batch(
    images: Sequence[Image], configs: Sequence[AnonymizerConfig], device: str = "cpu", max_batch: int = 8
) -> list[Analysis]:
    """Detect every face of every photo, then landmarks, alignment, attention map and region per face.

    ``images``: paths, PIL images or RGB uint8 (H, W, 3) arrays; ``configs[i]`` applies to ``images[i]``.
    """
    rgbs, faces, seconds = [], [], []
    for image, cfg in zip(images, configs, strict=True):
        rgb = load_rgb(image)
        start = time.perf_counter()
        found = detect.detect_faces(rgb, cfg.detect_threshold, cfg.max_detect_side)
        taken = {"detect": time.perf_counter() - start}
        rgbs.append(rgb)
        faces.append([_locate_face(rgb, face) for face in found])
        seconds.append(taken)
    todo = [(p, f) for p, photo in enumerate(faces) for f, r in enumerate(photo) if not r.covered]
    for recognizer, chunk in _chunks(todo, lambda s: configs[s[0]].recognizer, faces_per_pass(device, max_batch)):
        def attention(records: list[FaceRecord], recognizer: str = recognizer) -> list[dict]:
            maps = saliency.attention_map(np.stack([r.crop for r in records]), recognizer, device)
            return [dict(attention=m) for m in maps]

        _run_on_faces(faces, chunk, "saliency", attention)
    analyses = []
    for rgb, photo, taken in zip(rgbs, faces, seconds):
        total = taken["detect"] + sum(sum(r.seconds.values()) for r in photo)
        analyses.append(Analysis(rgb, tuple(photo), {**taken, "total": total}))
    return analyses


def _masked(record: FaceRecord, threshold: float) -> FaceRecord:
    found: dict = {}
    seconds = dict(record.seconds)
    try:
        with _stage("mask", seconds):
            found["hole_mask"] = mask.hole_mask(record.attention, record.region, threshold)
            if not found["hole_mask"].any():
                raise StageError("mask", "the mask is empty at this threshold")
            found["mask_area"] = mask.area_fraction(found["hole_mask"], record.region)
    except StageError as exc:
        return replace(record, **found, seconds=seconds, covered=True, error=str(exc))
    return replace(record, **found, seconds=seconds)


def render_batch(
    analyses: Sequence[Analysis], configs: Sequence[AnonymizerConfig], device: str = "cpu", max_batch: int = 8
) -> list[Result]:
    """Mask, fill and blend every analysed face, each photo with its own config's method, strength and seed."""
    faces: list[list[FaceRecord]] = []
    for analysis, cfg in zip(analyses, configs, strict=True):
        threshold = mask.threshold_for(cfg.strength, cfg.threshold)
        photo = []
        for index, face in enumerate(analysis.faces):
            record = replace(face, method=cfg.method, threshold=threshold, seed=cfg.seed + index,
                             seconds=dict(face.seconds))
            photo.append(record if record.covered else _masked(record, threshold))
        faces.append(photo)
    filled: dict[Slot, np.ndarray] = {}
    todo = [(p, f) for p, photo in enumerate(faces) for f, r in enumerate(photo) if not r.covered]
    for method, chunk in _chunks(todo, lambda s: configs[s[0]].method, faces_per_pass(device, max_batch)):
        def fill_faces(records: list[FaceRecord], method: str = method, chunk: list[Slot] = chunk) -> list[dict]:
            crops = np.stack([r.crop for r in records])
            out = fill.fill_many(method, crops, np.stack([r.hole_mask for r in records]),
                                 [r.seed for r in records], device)
            if out.shape != crops.shape or out.dtype != np.uint8:
                raise StageError("fill", f"the filler returned {out.shape} {out.dtype}")
            filled.update(zip(chunk, out))
            return [{}] * len(records)

        _run_on_faces(faces, chunk, "fill", fill_faces)
    return [_finish(analysis, photo, [filled.get((p, f)) for f in range(len(photo))], cfg)
            for p, (analysis, photo, cfg) in enumerate(zip(analyses, faces, configs))]


def _finish(analysis: Analysis, faces: list[FaceRecord], filled: list[np.ndarray | None],
            cfg: AnonymizerConfig) -> Result:
    """Paste each filled face back into the photo, cover the faces that failed, measure when asked."""
    out, records = analysis.image, []
    for record, crop in zip(faces, filled):
        if not record.covered and crop is not None:
            try:
                with _stage("blend", record.seconds):
                    out = blend.paste_back(out, crop, record.hole_mask, record.alignment)
            except StageError as exc:
                record = replace(record, covered=True, error=str(exc))
        if record.covered:
            out = blend.cover(out, record.box)
        records.append(record)
    if cfg.measure:
        records = [_measure(analysis.image, out, r) for r in records]
    render = sum(sum(v for k, v in r.seconds.items() if k in ("mask", "fill", "blend")) for r in records)
    seconds = {**analysis.seconds, "render": render, "total": analysis.seconds["total"] + render}
    return Result(out, tuple(records), seconds)


def _measure(original: np.ndarray, anonymized: np.ndarray, record: FaceRecord) -> FaceRecord:
    """Similarity of the face before and after, per recognizer, at the original landmarks:
    SFace and FaceNet cosine (same person above 0.363 for SFace), dlib L2 distance
    (same person below 0.6).
    """
    if record.alignment is None:
        return record
    start = time.perf_counter()
    crops = np.stack([align.warp(img, record.alignment, align.CROP_SIZE) for img in (original, anonymized)])
    similarity = {}
    for name in recognition.RECOGNIZERS:
        a, b = recognition.embed(crops, name)
        similarity[f"{name}_cosine"] = float(a @ b)
    a, b = (recognition.embed_dlib(img, record.landmarks) for img in (original, anonymized))
    similarity["dlib_distance"] = float(np.linalg.norm(a - b))
    seconds = {**record.seconds, "measure": time.perf_counter() - start}
    return replace(record, similarity=similarity, seconds=seconds)


def anonymize_batch(
    images: Sequence[Image], configs: Sequence[AnonymizerConfig], device: str = "cpu", max_batch: int = 8
) -> list[Result]:
    """Anonymize every face of every photo; ``configs[i]`` applies to ``images[i]``."""
    return render_batch(analyze_batch(images, configs, device, max_batch), configs, device, max_batch)
