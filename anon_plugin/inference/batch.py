"""Many photos, each with its own options, through the pipeline at once.

Detection and landmarks run photo by photo (OpenCV and dlib, on the CPU).
The faces of all the photos then go through the attention map and the fill
together, grouped by recognizer and by method, ``device.faces_per_pass``
faces per network pass. A photo's result does not depend on the photos
beside it: on the CPU it is bit-identical whatever ``max_batch``.

Fail closed: when any stage fails for a detected face, that face's box is
pixelated and its record says why. No detected face leaves untouched.

Verified (``AnonymizerConfig.verify``, the default): after the faces are
pasted back, each is read at its original's alignment and checked by SFace
and FaceNet (``verify``), the faces of all the photos together; a face still
too close climbs ``verify.ladder`` one step per round, and its photo is
composed again from the original, until it passes or is covered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from PIL import Image as PILImage

from . import align, blend, detect, fill, landmarks, mask, recognition, saliency, verify
from ..errors import StageError
from ..imageio import load_rgb
from .device import faces_per_pass
from .records import Analysis, AnonymizerConfig, FaceRecord, Result

Image = str | Path | np.ndarray | PILImage.Image
log = logging.getLogger("anon_plugin.inference")
Slot = tuple[int, int]  # (photo, face) index
T = TypeVar("T")


def _known(value: T | None, field: str) -> T:
    """A face's field that an earlier stage set: only a face that stage left uncovered gets here."""
    if value is None:
        raise ValueError(f"the face has no {field}: its earlier stage did not run")
    return value


@contextmanager
def _stage(name: str, seconds: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    except StageError:
        raise
    except Exception as exc:  # any failure of a stage becomes a covered face; its traceback is logged
        log.warning("%s failed, its face(s) covered: %s: %s", name, type(exc).__name__, exc, exc_info=True)
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
    for (p, f), record, update in zip(chunk, records, updates, strict=True):
        spent = {**record.seconds, stage: record.seconds.get(stage, 0.0) + share}
        faces[p][f] = replace(record, **update, seconds=spent)


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
            maps = saliency.attention_map(np.stack([_known(r.crop, "crop") for r in records]), recognizer, device)
            return [dict(attention=m) for m in maps]

        _run_on_faces(faces, chunk, "saliency", attention)
    analyses = []
    for rgb, photo, taken in zip(rgbs, faces, seconds, strict=True):
        total = taken["detect"] + sum(sum(r.seconds.values()) for r in photo)
        analyses.append(Analysis(rgb, tuple(photo), {**taken, "total": total}))
    return analyses


def _masked(record: FaceRecord, threshold: float) -> FaceRecord:
    found: dict = dict(threshold=threshold)
    seconds = dict(record.seconds)
    try:
        with _stage("mask", seconds):
            region = _known(record.region, "region")
            found["hole_mask"] = mask.hole_mask(_known(record.attention, "attention"), region, threshold)
            if not found["hole_mask"].any():
                raise StageError("mask", "the mask is empty at this threshold")
            found["mask_area"] = mask.area_fraction(found["hole_mask"], region)
    except StageError as exc:
        return replace(record, **found, seconds=seconds, covered=True, error=str(exc))
    return replace(record, **found, seconds=seconds)


@dataclass(frozen=True)
class Patch:
    """A filled face ready to paste: the crop, its hole and the photo -> crop matrix, at the size it was filled."""

    crop: np.ndarray
    hole: np.ndarray
    matrix: np.ndarray
    interpolation: int = cv2.INTER_LINEAR


def _native_size(record: FaceRecord) -> int:
    """The side of the face's crop at its own resolution (``fill.native_size``)."""
    return fill.native_size(align.Alignment(_known(record.alignment, "alignment")).scale)


def _native(image: np.ndarray, record: FaceRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The face's crop, hole, matrix, 68 points and region at its own resolution (``fill.native_size``)."""
    size = _native_size(record)
    zoom = size / align.CROP_SIZE
    matrix = _known(record.alignment, "alignment") * zoom
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)

    def resized(mask: np.ndarray) -> np.ndarray:
        if size == align.CROP_SIZE:
            return mask
        return cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0

    points = align.transform(matrix, _known(record.landmarks, "landmarks"))
    hole, region = _known(record.hole_mask, "hole mask"), _known(record.region, "region")
    return crop, resized(hole), matrix, points, resized(region)


def _fill(faces: list[list[FaceRecord]], images: Sequence[np.ndarray], todo: list[Slot],
          method: Callable[[Slot], str], first: Callable[[Slot], int], filled: dict[Slot, Patch], device: str,
          per_pass: int, candidates: Callable[[Slot], int]) -> None:
    """Fill the faces at ``todo`` (each with its method, from the generator's ``first`` identity) into ``filled``;
    a method of ``fill.NATIVE`` gets each face at its own resolution, one face per pass when sizes differ."""
    def key(s: Slot) -> str:
        size = _native_size(faces[s[0]][s[1]]) if method(s) in fill.NATIVE else 0
        return f"{method(s)}:{first(s)}:{size}"

    for _, chunk in _chunks(todo, key, per_pass):
        def fill_faces(records: list[FaceRecord], chunk: list[Slot] = chunk) -> list[dict]:
            name = method(chunk[0])
            if name in fill.NATIVE:
                crops, holes, matrices, points, regions = (np.stack(x) for x in zip(*(
                    _native(images[p], r) for (p, _), r in zip(chunk, records, strict=True)), strict=True))
            else:
                crops = np.stack([_known(r.crop, "crop") for r in records])
                holes = np.stack([_known(r.hole_mask, "hole mask") for r in records])
                matrices = np.stack([_known(r.alignment, "alignment") for r in records])
                points, regions = None, None
            seeds = [_known(r.seed, "seed") for r in records]
            out, quality = fill.fill_many(name, crops, holes, seeds, device, first(chunk[0]),
                                          points, candidates(chunk[0]), [r.landmark_source == "dlib" for r in records],
                                          regions)
            if out.shape != crops.shape or out.dtype != np.uint8:
                raise StageError("fill", f"the filler returned {out.shape} {out.dtype}")
            resample = cv2.INTER_CUBIC if name in fill.NATIVE else cv2.INTER_LINEAR
            updates = []
            for slot, o, h, m, r, record, q in zip(chunk, out, holes, matrices,
                                                   regions if regions is not None else holes, records, quality,
                                                   strict=True):
                grown = q.get("hole") == "region"  # the fill took the whole region (prior_fill.stylegan_many)
                filled[slot] = Patch(o, r if grown else h, m, resample)
                update = dict(quality=q or None, method=q.get("fallback", name))
                if grown:
                    update.update(hole_mask=record.region, mask_area=1.0, steps=(*record.steps, "region"))
                updates.append(update)
            return updates

        _run_on_faces(faces, chunk, "fill", fill_faces)


def _compose(original: np.ndarray, photo: list[FaceRecord], filled: list[Patch | None]) -> np.ndarray:
    """The original with every filled face pasted back and every covered face pixelated.

    A face whose paste fails is covered instead (its record in ``photo`` is replaced).
    """
    out = original.copy()  # one copy per composition; every face is then pasted into it
    for index, (record, patch) in enumerate(zip(photo, filled, strict=True)):
        if not record.covered and patch is not None:
            try:
                with _stage("blend", record.seconds):
                    blend.paste_back(out, patch.crop, patch.hole, patch.matrix, in_place=True,
                                     interpolation=patch.interpolation)
            except StageError as exc:
                photo[index] = record = replace(record, covered=True, error=str(exc))
        if record.covered:
            blend.cover(out, record.box, in_place=True)
    return out


def _verify(faces: list[list[FaceRecord]], images: list[np.ndarray], todo: list[Slot], device: str,
            per_pass: int) -> None:
    """Each face's similarity to its original, read in its photo at the original's alignment."""
    for _, chunk in _chunks(todo, lambda s: "verify", per_pass):
        def check(records: list[FaceRecord], chunk: list[Slot] = chunk) -> list[dict]:
            anonymized = np.stack([align.warp(images[p], _known(r.alignment, "alignment"), align.CROP_SIZE)
                                   for (p, _), r in zip(chunk, records, strict=True)])
            originals = np.stack([_known(r.crop, "crop") for r in records])
            return [dict(similarity=s) for s in verify.similarities(originals, anonymized, device)]

        _run_on_faces(faces, chunk, "verify", check)


def _climb(record: FaceRecord, ladder: list[verify.Step]) -> tuple[FaceRecord, verify.Step | None]:
    """The face's next step (its mask made anew), or the face covered when the ladder is done."""
    while ladder and ladder[0].threshold == 0 and ladder[0].method is None and record.mask_area == 1.0:
        ladder.pop(0)  # the fill took the whole region already (prior_fill.stylegan_many)
    if not ladder:
        similarity = _known(record.similarity, "similarity")
        close = ", ".join(f"{n} {similarity[f'{n}_cosine']:.3f} >= {verify.LINES[n]}"
                          for n in verify.too_close(similarity))
        return replace(record, covered=True, error=f"{verify.GAVE_UP} after {record.steps[-1]} ({close})"), None
    step = ladder.pop(0)
    record = replace(record, steps=(*record.steps, step.name), method=step.method or record.method)
    if step.threshold != record.threshold:  # a redraw keeps the face's mask
        record = _masked(record, step.threshold)
    return record, step


def render_batch(
    analyses: Sequence[Analysis], configs: Sequence[AnonymizerConfig], device: str = "cpu", max_batch: int = 8
) -> list[Result]:
    """Mask, fill and blend every analysed face, each photo with its own config's method, strength and seed;
    then, where the config says so, verify each face and climb the ladder until it passes or is covered."""
    faces: list[list[FaceRecord]] = []
    for analysis, cfg in zip(analyses, configs, strict=True):
        threshold = mask.threshold_for(cfg.strength, cfg.threshold)
        photo = []
        for index, face in enumerate(analysis.faces):
            record = replace(face, method=cfg.method, threshold=threshold, seed=cfg.seed + index,
                             steps=() if face.covered else (cfg.method,), seconds=dict(face.seconds))
            photo.append(record if record.covered else _masked(record, threshold))
        faces.append(photo)
    per_pass = faces_per_pass(device, max_batch)
    filled: dict[Slot, Patch] = {}
    originals = [a.image for a in analyses]
    todo = [(p, f) for p, photo in enumerate(faces) for f, r in enumerate(photo) if not r.covered]

    def candidates(s: Slot) -> int:
        return configs[s[0]].candidates

    def method(s: Slot) -> str:  # the policy's, or the one a fallback put on the face
        return _known(faces[s[0]][s[1]].method, "method")

    _fill(faces, originals, todo, method, lambda s: 0, filled, device, per_pass, candidates)

    def compose(p: int) -> np.ndarray:
        return _compose(analyses[p].image, faces[p], [filled.get((p, f)) for f in range(len(faces[p]))])

    images = [compose(p) for p in range(len(analyses))]
    todo = [(p, f) for p, f in todo if configs[p].verify and not faces[p][f].covered]
    ladders = {(p, f): list(verify.ladder(method((p, f)), _known(faces[p][f].threshold, "threshold")))
               for p, f in todo}
    while todo:
        _verify(faces, images, todo, device, per_pass)
        steps: dict[Slot, verify.Step] = {}
        changed = set()
        for p, f in todo:
            record = faces[p][f]
            if not record.covered and verify.too_close(_known(record.similarity, "similarity")):
                faces[p][f], step = _climb(record, ladders[(p, f)])
                if step is not None and not faces[p][f].covered:
                    steps[(p, f)] = step
            if faces[p][f].covered or (p, f) in steps:
                changed.add(p)
        todo = list(steps)
        firsts = {slot: step.first for slot, step in steps.items()}  # the generator's first identity per face
        _fill(faces, originals, todo, method, firsts.__getitem__, filled, device, per_pass, candidates)
        for p in sorted(changed):
            images[p] = compose(p)
        todo = [(p, f) for p, f in todo if not faces[p][f].covered]
    return [_finish(analysis, photo, image, cfg)
            for analysis, photo, image, cfg in zip(analyses, faces, images, configs, strict=True)]


def _finish(analysis: Analysis, faces: list[FaceRecord], image: np.ndarray, cfg: AnonymizerConfig) -> Result:
    """The photo's result: covered faces say so in their steps; every face is measured when asked."""
    records = [replace(r, steps=(*r.steps, "covered")) if r.covered else r for r in faces]
    if cfg.measure:
        records = [_measure(analysis.image, image, r) for r in records]
    render = sum(sum(v for k, v in r.seconds.items() if k in ("mask", "fill", "blend", "verify")) for r in records)
    seconds = {**analysis.seconds, "render": render, "total": analysis.seconds["total"] + render}
    return Result(image, tuple(records), seconds)


def _measure(original: np.ndarray, anonymized: np.ndarray, record: FaceRecord) -> FaceRecord:
    """Similarity of the face before and after, per recognizer, at the original landmarks:
    SFace and FaceNet cosine (as ``verify`` reads them), dlib L2 distance (same person below 0.6).
    """
    if record.alignment is None:
        return record
    start = time.perf_counter()
    before, after = (align.warp(img, record.alignment, align.CROP_SIZE)[None] for img in (original, anonymized))
    similarity = verify.similarities(before, after)[0]
    points = _known(record.landmarks, "landmarks")
    a, b = (recognition.embed_dlib(img, points) for img in (original, anonymized))
    similarity["dlib_distance"] = float(np.linalg.norm(a - b))
    seconds = {**record.seconds, "measure": time.perf_counter() - start}
    return replace(record, similarity=similarity, seconds=seconds)


def models_for(config: AnonymizerConfig) -> list[str]:
    """The registry's models a batch under ``config`` may load, sorted: recorded with each output's
    checksums, loaded at the daemon's start. A fallback's models are listed though a photo may never need them."""
    names = {"yunet", "dlib68"}  # detect, landmarks
    names |= set(recognition.RECOGNIZERS) if config.recognizer == "ensemble" else {config.recognizer}  # saliency
    methods = {config.method}
    if config.method in fill.NATIVE:
        methods.add(fill.FALLBACK)  # the faces the prior cannot serve
    if config.verify:
        names |= set(verify.LINES)
        threshold = mask.threshold_for(config.strength, config.threshold)
        methods |= {step.method for step in verify.ladder(config.method, threshold) if step.method}
    if config.measure:
        names |= {*verify.LINES, "dlib_resnet"}
    return sorted(names.union(*(fill.MODELS[m] for m in methods)))


# The models are built once per process and shared by its threads (a daemon's workers, the
# panel's previews), and Grad-CAM hooks them: one batch runs at a time, using every CPU thread
# or the GPU anyway, while the other threads read, encode and publish.
_ONE_BATCH_AT_A_TIME = threading.Lock()


def anonymize_batch(
    images: Sequence[Image], configs: Sequence[AnonymizerConfig], device: str = "cpu", max_batch: int = 8
) -> list[Result]:
    """Anonymize every face of every photo; ``configs[i]`` applies to ``images[i]``.

    Safe to call from several threads: they take turns."""
    with _ONE_BATCH_AT_A_TIME:
        return render_batch(analyze_batch(images, configs, device, max_batch), configs, device, max_batch)
