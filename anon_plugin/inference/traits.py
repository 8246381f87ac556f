"""What a new face must share with the face it replaces, measured the same way on both.

Pose and expression come from the 68 landmarks in the canonical crop (pure
geometry); smile, age, gender and glasses from the project's CelebA attribute
classifier (its logits). The face prior's edit directions are learned from
these numbers on generated samples (``training.face_bank``) and aimed at the
target's numbers at run time (``prior_fill``). Colour and light are not traits:
the fill transfers them from the target's own skin.
"""

from __future__ import annotations

import numpy as np

from .landmarks import JAW, LEFT_EYE, NOSE_TIP, RIGHT_EYE

NAMES: tuple[str, ...] = ("yaw", "pitch", "mouth_open", "eyes_open", "smile", "young", "male", "glasses")
# The attribute classifier's columns behind the last four traits.
ATTRIBUTE_OF = {"smile": "Smiling", "young": "Young", "male": "Male", "glasses": "Eyeglasses"}

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
    gap = np.mean([np.linalg.norm(points[a] - points[b]) for a, b in zip(*_INNER_LIPS)])
    mouth_open = float(gap / (np.linalg.norm(points[54] - points[48]) + 1e-6))
    eyes_open = (_eye_opening(points, RIGHT_EYE) + _eye_opening(points, LEFT_EYE)) / 2
    return {"yaw": yaw, "pitch": pitch, "mouth_open": mouth_open, "eyes_open": eyes_open}


def measure(crops: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, len(NAMES)) traits of canonical crops (N, 256, 256, 3) uint8 with their (N, 68, 2) landmarks."""
    from .networks.attributes import ATTRIBUTES, logits

    columns = [ATTRIBUTES.index(ATTRIBUTE_OF[n]) for n in NAMES if n in ATTRIBUTE_OF]
    scores = logits(crops)[:, columns]
    shapes = [geometry(p) for p in points]
    rows = [[s[n] for n in NAMES if n not in ATTRIBUTE_OF] + list(a) for s, a in zip(shapes, scores)]
    return np.array(rows, np.float32).reshape(len(crops), len(NAMES))
