"""The whole photo pipeline: detect -> landmarks -> align -> saliency -> mask -> fill -> blend.

Fail closed: when any stage fails for a detected face, that face's box is
pixelated and its record says why. No detected face leaves untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import align, blend, detect, fill, landmarks, mask, registry, recognition, saliency
from ..errors import StageError
from ..imageio import load_rgb


@dataclass(frozen=True)
class AnonymizerConfig:
    method: str = fill.DEFAULT_METHOD
    strength: str = "medium"
    threshold: float | None = None  # overrides strength when set
    recognizer: str = "sface"  # drives the attention map: sface, facenet or ensemble
    seed: int = 0
    detect_threshold: float = 0.6
    max_detect_side: int = 2048
    measure: bool = False  # also compare original and anonymized faces with every recognizer

    def __post_init__(self):
        fill.filler(self.method)
        mask.threshold_for(self.strength, self.threshold)
        if self.recognizer not in registry.SALIENCY:
            raise ValueError(f"unknown recognizer {self.recognizer!r}; choose from {', '.join(registry.SALIENCY)}")


@dataclass(frozen=True)
class FaceRecord:
    """One detected face. Crop-space arrays are CROP_SIZE x CROP_SIZE."""

    box: np.ndarray  # (4,) x0, y0, x1, y1 in photo pixels
    detection_score: float
    method: str | None = None  # None until rendered
    threshold: float | None = None
    landmarks: np.ndarray | None = None  # (68, 2) photo pixels
    landmark_source: str | None = None  # "dlib", or "mean face" when dlib lost a profile face
    alignment: np.ndarray | None = None  # (2, 3) photo -> crop
    crop: np.ndarray | None = None  # original aligned crop, RGB uint8
    attention: np.ndarray | None = None  # float32 in [0, 1]
    region: np.ndarray | None = None  # bool, eyebrow-to-chin region
    hole_mask: np.ndarray | None = None  # bool, True = regenerated
    mask_area: float | None = None  # hole / region
    covered: bool = False  # fail closed: the box was pixelated instead
    error: str | None = None
    similarity: dict[str, float] | None = None  # original vs anonymized, per recognizer
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    image: np.ndarray  # RGB uint8, same size as the input
    faces: tuple[FaceRecord, ...]
    seconds: dict[str, float]

    @property
    def failed_faces(self) -> int:
        return sum(f.covered for f in self.faces)


@dataclass(frozen=True)
class Analysis:
    """A photo through the stages that depend on neither method, strength nor seed
    (detect, landmarks, align, saliency, region). ``Anonymizer.render`` finishes it;
    one analysis can be rendered many ways."""

    image: np.ndarray  # RGB uint8
    faces: tuple[FaceRecord, ...]  # method, threshold and mask not set yet
    seconds: dict[str, float]


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


class Anonymizer:
    """Anonymize every face of a photo. Models load on first use and are reused.

    >>> result = Anonymizer(method="inpaint", strength="medium").anonymize("photo.jpg")
    >>> result.image, [f.mask_area for f in result.faces]
    """

    def __init__(self, config: AnonymizerConfig | None = None, **options):
        self.config = config or AnonymizerConfig(**options)
        self.threshold = mask.threshold_for(self.config.strength, self.config.threshold)
        self.filler = fill.filler(self.config.method)

    def anonymize(self, image: str | Path | np.ndarray | object) -> Result:
        """``image``: a path, a PIL image or an RGB uint8 (H, W, 3) array."""
        return self.render(self.analyze(image))

    def analyze(self, image: str | Path | np.ndarray | object) -> Analysis:
        """Detect every face, then landmarks, alignment, attention map and region per face."""
        rgb = load_rgb(image)
        start = time.perf_counter()
        cfg = self.config
        faces = detect.detect_faces(rgb, cfg.detect_threshold, cfg.max_detect_side)
        seconds = {"detect": time.perf_counter() - start}
        records = tuple(self._analyze_face(rgb, face) for face in faces)
        seconds["total"] = time.perf_counter() - start
        return Analysis(rgb, records, seconds)

    def render(self, analysis: Analysis) -> Result:
        """Mask, fill and blend every analysed face with this anonymizer's method, strength and seed."""
        start = time.perf_counter()
        cfg = self.config
        out, records = analysis.image, []
        for index, face in enumerate(analysis.faces):
            record = replace(face, method=cfg.method, threshold=self.threshold, seconds=dict(face.seconds))
            filled = None
            if not record.covered:
                record, filled = self._fill(record, cfg.seed + index)
            if filled is not None:
                try:
                    with _stage("blend", record.seconds):
                        out = blend.paste_back(out, filled, record.hole_mask, record.alignment)
                except StageError as exc:
                    record = replace(record, covered=True, error=str(exc))
            if record.covered:
                out = blend.cover(out, record.box)
            records.append(record)
        if cfg.measure:
            records = [_measure(analysis.image, out, r) for r in records]
        render = time.perf_counter() - start
        seconds = {**analysis.seconds, "render": render, "total": analysis.seconds["total"] + render}
        return Result(out, tuple(records), seconds)

    def _analyze_face(self, rgb: np.ndarray, face: detect.Detection) -> FaceRecord:
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
            with _stage("saliency", seconds):
                found["attention"] = saliency.attention_map(found["crop"][None], self.config.recognizer)[0]
        except StageError as exc:
            return FaceRecord(**found, covered=True, error=str(exc))
        return FaceRecord(**found)

    def _fill(self, record: FaceRecord, seed: int) -> tuple[FaceRecord, np.ndarray | None]:
        """The record with its mask, and the filled crop (None when the face must be covered)."""
        found: dict = {}
        try:
            with _stage("mask", record.seconds):
                found["hole_mask"] = mask.hole_mask(record.attention, record.region, self.threshold)
                if not found["hole_mask"].any():
                    raise StageError("mask", "the mask is empty at this threshold")
                found["mask_area"] = mask.area_fraction(found["hole_mask"], record.region)
            with _stage("fill", record.seconds):
                filled = self.filler(record.crop, found["hole_mask"], seed)
                if filled.shape != record.crop.shape or filled.dtype != np.uint8:
                    raise StageError("fill", f"the filler returned {filled.shape} {filled.dtype}")
        except StageError as exc:
            return replace(record, **found, covered=True, error=str(exc)), None
        return replace(record, **found), filled


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
