"""Every (method, strength) of one photo from one analysis.

Detection, landmarks, alignment and the attention map depend on neither the
method nor the strength, so the evaluation runs ``Anonymizer.analyze`` once
per photo and ``Anonymizer.render`` once per variant: the same code as
``Anonymizer.anonymize``, hence the same output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..inference import mask
from ..inference.pipeline import Analysis, Anonymizer, AnonymizerConfig, FaceRecord, Result


@dataclass(frozen=True)
class Strength:
    """A strength preset ("small", "medium", "large") or an explicit attention-map threshold."""

    label: str  # the preset's name, or the threshold written with format(t, "g")
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Strength:
        text = text.strip()
        if text in mask.STRENGTHS:
            return cls(text, mask.STRENGTHS[text])
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"unknown strength {text!r}; choose from {', '.join(mask.STRENGTHS)} "
                             "or give a threshold in [0, 1]") from None
        return cls(format(value, "g"), mask.threshold_for(None, value))

    @property
    def is_preset(self) -> bool:
        return self.label in mask.STRENGTHS

    def config(self, method: str, recognizer: str, seed: int) -> AnonymizerConfig:
        """The engine's config for a row's ``method`` label (see ``fill_of``) at this strength."""
        name, verified = fill_of(method)
        level = {"strength": self.label} if self.is_preset else {"threshold": self.threshold}
        return AnonymizerConfig(method=name, recognizer=recognizer, seed=seed, verify=verified, **level)


VERIFIED = "+verify"


def fill_of(method: str) -> tuple[str, bool]:
    """A row's method label -> (fill method, verified). A bare name is the fill alone, unverified, so
    every method is measured for what it does; ``generate+verify`` is the default policy's engine: the
    fill, then verification and its ladder (anon_plugin.inference.verify)."""
    if method.endswith(VERIFIED):
        return method[: -len(VERIFIED)], True
    return method, False


@dataclass(frozen=True)
class Variant:
    """One anonymized output and, per face, whether it was covered (fail closed) and its mask."""

    image: np.ndarray
    covered: tuple[bool, ...]
    errors: tuple[str | None, ...]
    hole_masks: tuple[np.ndarray | None, ...]
    mask_areas: tuple[float | None, ...]
    seconds: float  # the variant's own stages (mask, fill, blend, verify); add PhotoAnalysis.seconds for end to end
    steps: tuple[tuple[str, ...], ...] = ()  # per face: the fill, then the verification ladder's steps


def analyze(rgb: np.ndarray, config: AnonymizerConfig) -> Analysis:
    """Detect every face of ``rgb`` (RGB uint8 HxWx3), then landmarks, align and attention map per face."""
    return Anonymizer(config).analyze(rgb)


def hole_mask(face: FaceRecord, threshold: float) -> np.ndarray | None:
    """The face's hole mask at ``threshold`` (None when the face's stages failed)."""
    if face.attention is None or face.region is None:
        return None
    return mask.hole_mask(face.attention, face.region, threshold)


def _variant(result: Result, seconds: float) -> Variant:
    faces = result.faces
    return Variant(
        result.image, tuple(f.covered for f in faces), tuple(f.error for f in faces),
        tuple(f.hole_mask for f in faces), tuple(f.mask_area for f in faces), seconds, tuple(f.steps for f in faces),
    )


def render(analysis: Analysis, method: str, strength: Strength, recognizer: str, seed: int) -> Variant:
    """The photo anonymized with ``method`` at ``strength``; seconds: mask, fill, blend and verify only."""
    result = Anonymizer(strength.config(method, recognizer, seed)).render(analysis)
    return _variant(result, result.seconds["render"])


def anonymize(rgb: np.ndarray, method: str, strength: Strength, recognizer: str, seed: int) -> Variant:
    """The whole pipeline in one call, for one variant; seconds are end to end."""
    result = Anonymizer(strength.config(method, recognizer, seed)).anonymize(rgb)
    return _variant(result, result.seconds["total"])


def same_output(a: Variant, b: Variant) -> bool:
    """Bit-identical image, same covered faces and same masks."""
    if a.covered != b.covered or not np.array_equal(a.image, b.image):
        return False
    return all((x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
               for x, y in zip(a.hole_masks, b.hole_masks, strict=True))
