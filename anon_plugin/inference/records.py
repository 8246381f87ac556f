"""What the pipeline works on and returns: its options, one record per face, a photo's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import fill, mask, registry


@dataclass(frozen=True)
class AnonymizerConfig:
    method: str = fill.DEFAULT_METHOD
    strength: str = "medium"
    threshold: float | None = None  # overrides strength when set
    recognizer: str = "sface"  # drives the attention map: sface, facenet or ensemble
    seed: int = 0
    detect_threshold: float = 0.6
    max_detect_side: int = 2048
    verify: bool = True  # check each face with SFace and FaceNet and climb the ladder while it is too close
    measure: bool = False  # also compare original and anonymized faces with every recognizer
    candidates: int = fill.SCREENED  # faces the stylegan fill screens per round; the least like the person wins

    def __post_init__(self):
        fill.filler(self.method)
        mask.threshold_for(self.strength, self.threshold)
        if not 1 <= self.candidates <= fill.MAX_CANDIDATES:
            raise ValueError(f"candidates must be 1 to {fill.MAX_CANDIDATES}, not {self.candidates}")
        if self.recognizer not in registry.SALIENCY:
            raise ValueError(f"unknown recognizer {self.recognizer!r}; choose from {', '.join(registry.SALIENCY)}")


@dataclass(frozen=True)
class FaceRecord:
    """One detected face. Crop-space arrays are CROP_SIZE x CROP_SIZE."""

    box: np.ndarray  # (4,) x0, y0, x1, y1 in photo pixels
    detection_score: float
    method: str | None = None  # None until rendered
    threshold: float | None = None
    seed: int | None = None  # the fill's seed (the photo's seed + the face's index)
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
    quality: dict[str, Any] | None = None  # the fill's own scores of the kept candidate, or its fallback (stylegan)
    steps: tuple[str, ...] = ()  # the fill, then the ladder's steps that ran: "redraw", "strength:large", ...
    seconds: dict[str, float] = field(default_factory=dict)


    def quality_json(self) -> dict[str, Any] | None:
        """``quality`` as JSON values (numpy numbers become rounded floats), None when empty."""
        if not self.quality:
            return None
        return {k: v if isinstance(v, str) else round(float(v), 4) for k, v in self.quality.items()}


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
