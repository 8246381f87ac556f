"""What a new face must share with the face it replaces, measured the same way on both.

Pose and expression come from the 68 landmarks in the canonical crop (pure
geometry); smile, age, gender, glasses, beard and lipstick from the project's
CelebA attribute classifier (its logits, a beard as "not No_Beard"); the skin
tone is the mean CIELAB colour of the skin between the features. The face
prior's bank (``training.face_bank``) holds these numbers for its samples: the
fill picks samples near the target's and moves them the rest of the way along
directions learned from the bank (``prior_fill``).
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmarks import JAW, LEFT_EYE, NOSE_TIP, RIGHT_EYE

NAMES: tuple[str, ...] = ("yaw", "pitch", "mouth_open", "eyes_open", "smile", "young", "male", "glasses", "beard",
                          "lipstick")
# The attribute classifier's column behind each attribute trait, and its sign.
ATTRIBUTE_OF = {"smile": ("Smiling", 1), "young": ("Young", 1), "male": ("Male", 1), "glasses": ("Eyeglasses", 1),
                "beard": ("No_Beard", -1), "lipstick": ("Wearing_Lipstick", 1)}
GEOMETRY = tuple(n for n in NAMES if n not in ATTRIBUTE_OF)
MOUTH = slice(48, 60)
BROW_LINES = (slice(17, 22), slice(22, 27))

_INNER_LIPS = (61, 62, 63), (67, 66, 65)


def _eye_opening(points: np.ndarray, eye: slice) -> float:
    p = points[eye]  # 6 points: corners 0 and 3, upper 1-2, lower 5-4
    return float((np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2 * np.linalg.norm(p[0] - p[3]) + 1e-6))


def geometry(points: np.ndarray) -> dict[str, float]:
    """Pose and expression of one face from its (68, 2) landmarks (any frame; the numbers are ratios).

    yaw: the nose tip's place between the jaw's ends, -0.5 (facing its right) .. 0.5;
    pitch: the nose tip's height between the eyes and the mouth, around 0.5;
    mouth_open: the inner lips' gap over the mouth's width; eyes_open: the eyes' aspect ratio.
    """
    jaw = points[JAW]
    left, right = jaw[0], jaw[-1]
    across = right - left
    width = float(np.linalg.norm(across)) + 1e-6
    nose = points[NOSE_TIP]
    yaw = float((nose - left) @ across / width**2 - 0.5)
    eyes = (points[RIGHT_EYE].mean(0) + points[LEFT_EYE].mean(0)) / 2
    mouth = points[48:68].mean(0)
    down = mouth - eyes
    pitch = float((nose - eyes) @ down / (down @ down + 1e-6))
    gap = np.mean([np.linalg.norm(points[a] - points[b]) for a, b in zip(*_INNER_LIPS, strict=True)])
    mouth_open = float(gap / (np.linalg.norm(points[54] - points[48]) + 1e-6))
    eyes_open = (_eye_opening(points, RIGHT_EYE) + _eye_opening(points, LEFT_EYE)) / 2
    return {"yaw": yaw, "pitch": pitch, "mouth_open": mouth_open, "eyes_open": eyes_open}


def measure(crops: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, len(NAMES)) traits of canonical crops (N, 256, 256, 3) uint8 with their (N, 68, 2) landmarks."""
    from .networks.attributes import ATTRIBUTES, logits

    attributes = [n for n in NAMES if n in ATTRIBUTE_OF]
    columns = [ATTRIBUTES.index(ATTRIBUTE_OF[n][0]) for n in attributes]
    signs = np.array([ATTRIBUTE_OF[n][1] for n in attributes], np.float32)
    scores = dict(zip(attributes, (logits(crops)[:, columns] * signs).T, strict=True))
    shapes = [geometry(p) for p in points]
    rows = [[s[n] if n in s else scores[n][i] for n in NAMES] for i, s in enumerate(shapes)]
    return np.array(rows, np.float32).reshape(len(crops), len(NAMES))


def skin(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: the face inside its landmarks' hull but off the eyes, brows and mouth."""
    out = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(out, cv2.convexHull(points.astype(np.int32)), 1)
    width = max(2, round(size / 40))
    for part in (RIGHT_EYE, LEFT_EYE, MOUTH):
        cv2.fillConvexPoly(out, cv2.convexHull(points[part].astype(np.int32)), 0)
        cv2.polylines(out, [points[part].astype(np.int32)], True, 0, width)
    for brow in BROW_LINES:
        cv2.polylines(out, [points[brow].astype(np.int32)], False, 0, 2 * width)
    return out.astype(bool)


def lab(image: np.ndarray) -> np.ndarray:
    """RGB (uint8, or float 0-255) -> float32 CIELAB (L 0-100)."""
    return cv2.cvtColor((np.asarray(image, np.float32).clip(0, 255) / 255), cv2.COLOR_RGB2LAB)


def skin_tone(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(3,) mean CIELAB colour of the skin of a face crop (any size) with its (68, 2) points; where
    too little skin shows, of the whole eyebrow-to-chin hull."""
    mask = skin(points, crop.shape[0])
    if mask.sum() < 16:
        mask = np.zeros(crop.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 1)
        mask = mask.astype(bool)
    return lab(crop)[mask].mean(0)
