"""How a face of the prior looks where it was placed, and what of the target's face stays in front of it.

The ``stylegan`` fill screens candidates and records the one it keeps with
these measures (``prior_fill``):

- ``misfit``: how far the candidate's 68 points stray from the target's shape
  (a face turned or tilted otherwise than asked, which the warp would bend);
- ``shading_gap``: the lightness difference at a coarse scale (shadows, a
  beard, hair or glasses one face has and the other has not);
- ``foreign``: the share of the hole that is neither skin nor a feature
  (a blob the prior drew, a hat's shadow);
- ``scores``: the colour step across the hole's border, the detail ratio and
  the landmarks dlib finds on the result, recorded with the face;
- ``glasses``: the frames (and dark lenses) the person wears, kept in front.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import align, landmarks, traits
from .prior_place import INNER, _disk, _laplacian_variance, _smooth
from ..errors import StageError

SHADING_SIGMA = 1 / 24  # of the crop size: the scale at which shading is compared (shading_gap)
FOREIGN_DELTA_E = 30.0  # CIE76 from the skin's mean colour: a pixel this far is not skin
FRAME_CONTRAST = 25  # grey levels a glasses rim is darker than the skin around it (black-hat)
LENS_CONTRAST = 40  # grey levels under the skin's median that a sunglass lens is
SUNGLASSES = 0.85  # share of the eyes' surroundings dark lenses cover (measured: sunglasses 0.96-1, clear 0.05-0.68)


def misfit(points: np.ndarray, target: np.ndarray) -> float:
    """How far a face's 68 points are from the target's shape once placed on its inner points (mean distance,
    in eye distances): a turned or tilted face that the warp would have to bend."""
    placed = align.transform(align.similarity(points[INNER], target[INNER]), points)
    eyes = landmarks.five_points(target)
    return float(np.linalg.norm(placed - target, axis=1).mean() / (np.linalg.norm(eyes[1] - eyes[0]) + 1e-6))


def shading_gap(composed: np.ndarray, crop: np.ndarray, hole: np.ndarray) -> float:
    """Mean difference of lightness (CIELAB L) between a composed face and the original under ``hole``, both
    blurred to ``SHADING_SIGMA`` of the crop: the shadows, beard, hair or glasses one has and the other has
    not, which a viewer sees before any feature (a new person's features are finer than that)."""
    sigma = SHADING_SIGMA * hole.shape[0]
    a, b = (cv2.GaussianBlur(traits.lab(x)[..., 0], (0, 0), sigma) for x in (composed, crop))
    return float(np.abs(a - b)[hole].mean()) if hole.any() else 0.0


def foreign(image: np.ndarray, points: np.ndarray, hole: np.ndarray) -> float:
    """The share of ``hole`` in a face (68 ``points``) that is neither its skin nor its eyes, brows, nostrils
    or mouth: far (``FOREIGN_DELTA_E``) from the skin's mean colour. Hair over the face, glasses, a hand, or a
    blob the prior drew."""
    size = hole.shape[0]
    features = np.zeros((size, size), np.uint8)
    width = max(2, round(size / 32))
    for part in (landmarks.RIGHT_EYE, landmarks.LEFT_EYE, traits.MOUTH, slice(31, 36)):
        cv2.fillConvexPoly(features, cv2.convexHull(points[part].astype(np.int32)), 1)
        cv2.polylines(features, [points[part].astype(np.int32)], True, 1, width)
    for brow in traits.BROW_LINES:
        cv2.polylines(features, [points[brow].astype(np.int32)], False, 1, 2 * width)
    where = hole & ~features.astype(bool)
    if not where.any():
        return 0.0
    lab = traits.lab(image)
    tone = traits.skin_tone(image, points)
    return float((np.linalg.norm(lab[where] - tone, axis=1) > FOREIGN_DELTA_E).mean())


def border_step(image: np.ndarray, hole: np.ndarray) -> float:
    """Mean colour step (grey levels) from just inside the hole to the image just outside it."""
    size = hole.shape[0]
    width = max(2, round(size / 64))
    inner = hole & ~cv2.erode(hole.astype(np.uint8), _disk(width)).astype(bool)
    outer = cv2.dilate(hole.astype(np.uint8), _disk(width)).astype(bool) & ~hole
    if not inner.any() or not outer.any():
        return 0.0
    num, den = _smooth(image.astype(np.float32), outer.astype(np.float32), width)
    nearby = num / np.maximum(den, 1e-6)
    return float(np.abs(image.astype(np.float32) - nearby)[inner & (den[..., 0] > 0.05)].mean())


def landmark_error(image: np.ndarray, target: np.ndarray) -> float:
    """Mean distance, in eye distances, of the inner points dlib finds on ``image`` from ``target``
    (at most 1: one eye distance off, or dlib found no face there)."""
    from .detect import Detection

    eyes = landmarks.five_points(target)
    x0, y0 = target.min(0)
    x1, y1 = target.max(0)
    box = np.array([x0, y0 - 0.25 * (y1 - y0), x1, y1], np.float64)  # YuNet-like: brows to chin, plus forehead
    try:
        found = landmarks.landmarks68(image, Detection(box, eyes, 1.0))
    except StageError:
        return 1.0
    ocular = np.linalg.norm(eyes[1] - eyes[0]) + 1e-6
    return min(1.0, float(np.linalg.norm(found[INNER] - target[INNER], axis=1).mean() / ocular))


def scores(candidate: np.ndarray, crop: np.ndarray, hole: np.ndarray, points: np.ndarray) -> dict[str, float]:
    """Realism of a composed candidate: border step (its own and the original's), detail ratio, landmark error."""
    original = _laplacian_variance(crop, hole)
    return {
        "border_step": border_step(candidate, hole),
        "border_step_original": border_step(crop, hole),
        "detail_ratio": _laplacian_variance(candidate, hole) / max(original, 1e-6),
        "landmark_error": landmark_error(candidate, points),
    }


def frames(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(S, S) bool: the rims, bridge and temples of the glasses a face (68 ``points``) wears: thin dark lines
    (a morphological black-hat over ``FRAME_CONTRAST``) around the eyes, off the eyes and brows themselves.
    They stay in front of the new face, as the person wore them."""
    size = crop.shape[0]
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    dark = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, _disk(max(2, round(size / 40)))) > FRAME_CONTRAST
    zone: np.ndarray = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(zone, cv2.convexHull(points[[0, 1, 15, 16, *range(17, 31), *range(36, 48)]].astype(np.int32)), 1)
    zone = cv2.dilate(zone, _disk(max(1, round(size / 32))))
    width = max(2, round(size / 64))
    for eye in (landmarks.RIGHT_EYE, landmarks.LEFT_EYE):
        hull = cv2.convexHull(points[eye].astype(np.int32))
        cv2.fillConvexPoly(zone, hull, 0)
        cv2.polylines(zone, [hull], True, 0, 2 * width)
    for brow in traits.BROW_LINES:
        cv2.polylines(zone, [points[brow].astype(np.int32)], False, 0, 3 * width)
    found = (dark & zone.astype(bool)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(found)
    long = [k for k in range(1, count) if max(stats[k, cv2.CC_STAT_WIDTH], stats[k, cv2.CC_STAT_HEIGHT]) >= size / 12]
    return cv2.dilate(np.isin(labels, long).astype(np.uint8), _disk(max(1, round(size / 256)))).astype(bool)


def glasses(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(S, S) bool: the glasses a face wears, to keep in front of the new face: their frames, and where the
    lenses hide the eyes (``SUNGLASSES`` of the eyes' surroundings dark), the lenses too."""
    kept = frames(crop, points)
    size = crop.shape[0]
    lenses = np.zeros((size, size), np.uint8)
    for eye in (landmarks.RIGHT_EYE, landmarks.LEFT_EYE):
        cv2.fillConvexPoly(lenses, cv2.convexHull(points[eye].astype(np.int32)), 1)
    lenses = cv2.dilate(lenses, _disk(max(2, round(size / 24)))).astype(bool)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    skin = traits.skin(points, size) & ~lenses
    dark = grey < (np.median(grey[skin]) if skin.any() else grey.mean()) - LENS_CONTRAST
    if dark[lenses].mean() >= SUNGLASSES:
        kept |= cv2.morphologyEx((dark & lenses).astype(np.uint8), cv2.MORPH_CLOSE, _disk(2)).astype(bool)
    return kept
