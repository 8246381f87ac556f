"""Stage 2: the 68 dlib landmarks of a detected face.

dlib's model is frontal. On a profile or a covered face its points drift off
the face; then the points come from the median CelebA face placed on the
detector's own five points, which hold up in profile.
"""

from __future__ import annotations

import functools
from importlib import resources

import dlib
import numpy as np

from . import registry
from .align import Alignment, align, invert, transform
from .detect import Detection, detect_faces
from ..errors import StageError

# The 68-point model was trained on dlib HOG boxes, which sit lower and
# shorter than YuNet's (measured on 40 wild photos: x -4%, y +18%, w x1.09,
# h x0.78). Fed YuNet boxes as they are, the chin lands too high.
_BOX_TO_HOG = np.array([-0.04, 0.18, 1.09, 0.78])

JAW = slice(0, 17)
BROWS = slice(17, 27)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_RIGHT, MOUTH_LEFT = 48, 54


def landmarks68(image: np.ndarray, face: Detection) -> np.ndarray:
    """(68, 2) float landmarks of ``face`` in an RGB uint8 HxWx3 image (iBUG order).

    Raises StageError when the points disagree with the detector's eyes,
    i.e. the shape predictor did not lock onto the face.
    """
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    dx, dy, sw, sh = _BOX_TO_HOG
    rect = dlib.rectangle(
        round(x0 + dx * w), round(y0 + dy * h),
        round(x0 + dx * w + sw * w), round(y0 + dy * h + sh * h),
    )
    shape = registry.load("dlib68")(np.ascontiguousarray(image), rect)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    eyes = np.stack([points[RIGHT_EYE].mean(0), points[LEFT_EYE].mean(0)])
    ocular = float(np.linalg.norm(face.points[1] - face.points[0]))
    error = float(np.linalg.norm(eyes - face.points[:2], axis=1).max())
    if not np.isfinite(error) or error > 0.5 * max(ocular, 1.0):
        raise StageError("landmarks", f"eyes off the detector's by {error:.0f} px")
    return points


def five_points(points68: np.ndarray) -> np.ndarray:
    """(5, 2) eye centres, nose tip and mouth corners, in YuNet's / ArcFace's order."""
    return np.stack([
        points68[RIGHT_EYE].mean(0), points68[LEFT_EYE].mean(0), points68[NOSE_TIP],
        points68[MOUTH_RIGHT], points68[MOUTH_LEFT],
    ])


@functools.cache
def mean_face() -> np.ndarray:
    """(68, 2) median shape in the canonical crop (from CelebA train photos)."""
    return np.loadtxt(resources.files(__package__).joinpath("data/mean_face68.txt").read_text().splitlines())


def face_landmarks(image: np.ndarray, face: Detection) -> tuple[np.ndarray, str]:
    """(68, 2) landmarks and where they came from: "dlib", or "mean face" when dlib lost the face."""
    try:
        return landmarks68(image, face), "dlib"
    except StageError:
        return transform(invert(align(face.points).matrix), mean_face()), "mean face"


def locate(
    image: np.ndarray, score_threshold: float = 0.6, max_side: int = 2048
) -> tuple[Detection, np.ndarray, Alignment] | None:
    """The most confident face of an RGB uint8 image: its detection, 68 landmarks and alignment.

    None when no face is found. (For data preparation and judging, which need
    one face per photo; the pipeline itself handles every face.)
    """
    faces = detect_faces(image, score_threshold, max_side)
    if not faces:
        return None
    points, _ = face_landmarks(image, faces[0])
    return faces[0], points, align(five_points(points))
