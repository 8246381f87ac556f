"""Stage 5: region control. Threshold the ID attention map into a hole mask.

Convention everywhere: ``hole_mask`` is a bool array, True = regenerate,
False = keep. The mask never leaves the eyebrow-to-chin region.
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmarks import BROWS, JAW

# Thresholds on the attention map (normalised to a peak of 1 inside the
# eyebrow-to-chin region). Higher threshold, smaller mask. docs/pipeline.md
# gives the mean area each preset yields.
STRENGTHS = {"small": 0.6, "medium": 0.4, "large": 0.2}


def threshold_for(strength: str | None, threshold: float | None) -> float:
    """The threshold a preset or an explicit value stands for."""
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {threshold}")
        return float(threshold)
    if strength not in STRENGTHS:
        raise ValueError(f"unknown strength {strength!r}; choose from {', '.join(STRENGTHS)}")
    return STRENGTHS[strength]


def region_of_interest(points68: np.ndarray, size: int) -> np.ndarray:
    """Bool (size, size): convex hull of the jaw line and the eyebrows (crop coordinates)."""
    outline = np.concatenate([points68[JAW], points68[BROWS]])
    hull = cv2.convexHull(np.round(outline).astype(np.int32))
    roi = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(roi, hull, 1)
    return roi.astype(bool)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    # Flood the background from a padded border; whatever it cannot reach is a hole.
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    return mask | (flood[1:-1, 1:-1] == 0)


def hole_mask(attention: np.ndarray, roi: np.ndarray, threshold: float) -> np.ndarray:
    """Bool hole mask (H, W) from an attention map (H, W) in [0, 1] and the region of interest.

    Thresholded, then cleaned: specks removed (opening), nearby parts joined
    (closing), holes filled, clipped to the region. Every step is monotone,
    so a higher threshold never gives a larger mask.
    """
    inside = np.where(roi, attention, 0.0)
    peak = inside.max()
    if peak <= 0:
        return np.zeros_like(roi)
    raw = (inside / peak >= threshold) & roi
    scale = roi.shape[0] / 256
    mask = raw.astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(max(1, round(3 * scale))))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(max(1, round(7 * scale))))
    return _fill_holes(mask.astype(bool)) & roi


def area_fraction(mask: np.ndarray, roi: np.ndarray) -> float:
    """Share of the eyebrow-to-chin region that the mask covers."""
    return float(mask.sum() / max(int(roi.sum()), 1))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks of one shape (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
