"""Stage 1: find every face (YuNet): a box, five points and a confidence.

YuNet misses faces under about 24 px at the scale it reads them (measured on
100 CelebA train faces pasted on a grey canvas, score >= 0.6: 85% found at
17 px wide, 93% at 20, all at 24; the same faces magnified twice: all at 17).
So small faces get two more looks, and large photos one more pass:

- the photo is read whole, shrunk to ``max_side`` when larger (every face big
  enough to be found there);
- a photo larger than ``max_side`` is read again at full resolution, in
  overlapping tiles (the overlap holds any face the shrunk pass could miss);
- a small candidate under the score threshold (down to PROPOSAL_SCORE) is
  looked at again magnified ZOOM times, and kept if YuNet is sure there.

Duplicates across passes and tiles are merged, the most confident kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from . import registry

SMALL_FACE = 32  # px wide: under this, YuNet's own scale is not enough to trust a miss or a low score
PROPOSAL_SCORE = 0.1  # small candidates from here up to the threshold are checked magnified
ZOOM = 2.0
DUPLICATE = 0.3  # IoU from which two boxes of different passes are one face (YuNet's own NMS line)


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (4,) float x0, y0, x1, y1 in image pixels
    points: np.ndarray  # (5, 2) right eye, left eye, nose tip, right and left mouth corner
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])


def _yunet(image: np.ndarray, threshold: float, scale: float = 1.0, origin: tuple[int, int] = (0, 0)
           ) -> list[Detection]:
    """YuNet on an RGB uint8 image that is the photo scaled by ``scale`` with its corner at ``origin`` (photo px)."""
    detector = registry.load("yunet")
    detector.setInputSize((image.shape[1], image.shape[0]))
    detector.setScoreThreshold(threshold)
    _, faces = detector.detect(np.ascontiguousarray(image[:, :, ::-1]))
    shift = np.array(origin, np.float64)
    found = []
    for row in [] if faces is None else faces:
        x, y, bw, bh = row[:4] / scale
        found.append(Detection(
            box=np.array([x, y, x + bw, y + bh], dtype=np.float64) + np.tile(shift, 2),
            points=(row[4:14].reshape(5, 2) / scale).astype(np.float64) + shift,
            score=float(row[14]),
        ))
    return found


def _spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the fewest tiles of at most ``tile`` px along one side, neighbours sharing ``overlap``."""
    count = max(1, math.ceil((length - overlap) / (tile - overlap)))
    size = min(length, math.ceil((length - overlap) / count) + overlap)
    starts = [min(i * (size - overlap), length - size) for i in range(count)]
    return [(start, start + size) for start in starts]


def _tiled(image: np.ndarray, tile: int, overlap: int, threshold: float) -> list[Detection]:
    """Full-resolution detections, tile by tile.

    A box touching a tile's inner edge is left to the neighbour that holds it whole.
    """
    h, w = image.shape[:2]
    found = []
    for y0, y1 in _spans(h, tile, overlap):
        for x0, x1 in _spans(w, tile, overlap):
            inner = np.array([x0 if x0 > 0 else -math.inf, y0 if y0 > 0 else -math.inf,
                              x1 if x1 < w else math.inf, y1 if y1 < h else math.inf])
            for d in _yunet(image[y0:y1, x0:x1], threshold, origin=(x0, y0)):
                if (d.box[:2] > inner[:2] + 1).all() and (d.box[2:] < inner[2:] - 1).all():
                    found.append(d)
    return found


def _magnified(image: np.ndarray, face: Detection, threshold: float) -> Detection | None:
    """The face looked at again in a window three times its size, magnified ZOOM times."""
    h, w = image.shape[:2]
    cx, cy = (face.box[:2] + face.box[2:]) / 2
    half = 1.5 * max(face.box[2] - face.box[0], face.box[3] - face.box[1], 8.0)
    x0, y0 = max(int(cx - half), 0), max(int(cy - half), 0)
    x1, y1 = min(int(math.ceil(cx + half)), w), min(int(math.ceil(cy + half)), h)
    window = cv2.resize(image[y0:y1, x0:x1], None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_CUBIC)
    inside = [d for d in _yunet(window, threshold, ZOOM, (x0, y0))
              if face.box[0] <= (d.box[0] + d.box[2]) / 2 <= face.box[2]
              and face.box[1] <= (d.box[1] + d.box[3]) / 2 <= face.box[3]]
    return max(inside, key=lambda d: d.score, default=None)


def _confirmed(image: np.ndarray, candidates: list[Detection], threshold: float) -> list[Detection]:
    """The candidates at or over the threshold, and the small ones under it that a magnified look confirms."""
    kept = []
    for d in candidates:
        if d.score >= threshold:
            kept.append(d)
        elif d.width < SMALL_FACE and (closer := _magnified(image, d, threshold)) is not None:
            kept.append(closer)
    return kept


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    # Intersection over union, not over the smaller box: a face half hidden behind another is its own face.
    inter = np.prod(np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None))
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return bool(inter >= DUPLICATE * union)


def _merged(found: list[Detection]) -> list[Detection]:
    """Most confident first; a box overlapping one already kept by DUPLICATE or more is the same face."""
    kept: list[Detection] = []
    for d in sorted(found, key=lambda d: -d.score):
        if not any(_same_face(d.box, k.box) for k in kept):
            kept.append(d)
    return kept


def detect_faces(
    image: np.ndarray, score_threshold: float = 0.6, max_side: int = 2048
) -> list[Detection]:
    """Faces in an RGB uint8 HxWx3 image, most confident first, boxes in the image's pixels.

    YuNet's cost grows with the pixel count: an image whose longer side
    exceeds ``max_side`` is read shrunk to it, then at full resolution in
    tiles of ``max_side`` overlapping by what the shrunk pass could miss.
    """
    h, w = image.shape[:2]
    proposals = min(PROPOSAL_SCORE, score_threshold)
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return _merged(_confirmed(image, _yunet(image, proposals), score_threshold))
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    overlap = math.ceil(2 * SMALL_FACE / scale)
    full = _tiled(image, max_side, overlap, proposals)
    return _merged(_yunet(small, score_threshold, scale) + _confirmed(image, full, score_threshold))
