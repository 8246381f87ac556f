"""The explain picture: per face, aligned crop | ID attention map | mask | result."""

from __future__ import annotations

import cv2
import numpy as np

from .align import CROP_SIZE, warp
from .records import FaceRecord

COLUMNS = ("aligned crop", "ID attention map", "mask", "result")
_LABEL_HEIGHT = 22


def _heatmap(crop: np.ndarray, attention: np.ndarray) -> np.ndarray:
    colour = cv2.applyColorMap(np.round(attention * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return np.round(0.45 * crop + 0.55 * colour).astype(np.uint8)


def _mask_view(crop: np.ndarray, region: np.ndarray, hole: np.ndarray) -> np.ndarray:
    view = (crop * 0.35).astype(np.uint8)
    view[region] = (0.6 * crop[region] + 0.4 * np.array([60, 60, 200])).astype(np.uint8)
    view[hole] = (255, 255, 255)
    return view


def _label(text: str, width: int) -> np.ndarray:
    bar = np.full((_LABEL_HEIGHT, width, 3), 24, np.uint8)
    cv2.putText(bar, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (235, 235, 235), 1, cv2.LINE_AA)
    return bar


def _row(face: FaceRecord, result: np.ndarray) -> np.ndarray:
    blank = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
    if face.crop is None or face.alignment is None:
        tiles = [blank] * 4
    else:
        tiles = [
            face.crop,
            _heatmap(face.crop, face.attention) if face.attention is not None else blank,
            _mask_view(face.crop, face.region, face.hole_mask)
            if face.region is not None and face.hole_mask is not None else blank,
            warp(result, face.alignment, CROP_SIZE),
        ]
    if face.covered:
        note = f"covered (fail closed): {face.error}"
    else:
        note = f"{' > '.join(face.steps)}  threshold {face.threshold:.2f}  mask {face.mask_area:.0%} of brow-to-chin"
    return np.vstack([np.hstack(tiles), _label(note[:110], 4 * CROP_SIZE)])


def explain_picture(faces: tuple[FaceRecord, ...], result: np.ndarray) -> np.ndarray:
    """RGB uint8 picture, one row per face (a single note when there is none)."""
    width = len(COLUMNS) * CROP_SIZE
    header = np.hstack([_label(c, CROP_SIZE) for c in COLUMNS])
    if not faces:
        return np.vstack([header, _label("no face found", width)])
    return np.vstack([header, *[_row(f, result) for f in faces]])
