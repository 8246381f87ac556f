"""Stage 1: find every face (YuNet): a box, five points and a confidence."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import registry


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (4,) float x0, y0, x1, y1 in image pixels
    points: np.ndarray  # (5, 2) right eye, left eye, nose tip, right and left mouth corner
    score: float


def detect_faces(
    image: np.ndarray, score_threshold: float = 0.6, max_side: int = 2048
) -> list[Detection]:
    """Faces in an RGB uint8 HxWx3 image, most confident first.

    Images whose longer side exceeds ``max_side`` are detected on a downscaled
    copy (YuNet's cost grows with the pixel count); boxes come back in the
    original image's pixels.
    """
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = image if scale == 1.0 else cv2.resize(
        image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
    )
    detector = registry.load("yunet")
    detector.setInputSize((small.shape[1], small.shape[0]))
    detector.setScoreThreshold(score_threshold)
    _, faces = detector.detect(np.ascontiguousarray(small[:, :, ::-1]))
    if faces is None:
        return []
    found = []
    for row in faces:
        x, y, bw, bh = row[:4] / scale
        found.append(Detection(
            box=np.array([x, y, x + bw, y + bh], dtype=np.float64),
            points=(row[4:14].reshape(5, 2) / scale).astype(np.float64),
            score=float(row[14]),
        ))
    return sorted(found, key=lambda d: -d.score)
