"""Stage 3: a similarity transform from the photo to a canonical face crop, and back.

The canonical crop is CROP_SIZE x CROP_SIZE with the face framed like the
ArcFace template, zoomed out so that the eyebrows, the chin and a ring of
skin and hair around them fit inside (context for the fill). The recognizers'
inputs are fixed resamplings of this crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CROP_SIZE = 256

# ArcFace's 5-point template for a 112x112 input (eyes, nose tip, mouth corners).
ARCFACE_112 = np.array([
    [38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
    [41.5493, 92.3655], [70.7299, 92.2041],
])
# Crop = ArcFace frame scaled by 1.714 around (56, 66): eyebrows land near
# y=58 and the chin near y=217 of 256.
_ZOOM = CROP_SIZE / 112 * 0.75
CROP_TEMPLATE = (ARCFACE_112 - [56.0, 66.0]) * _ZOOM + CROP_SIZE / 2


@dataclass(frozen=True)
class Alignment:
    """Photo -> crop similarity, as a 2x3 matrix, and its exact inverse."""

    matrix: np.ndarray  # (2, 3) photo -> crop
    size: int = CROP_SIZE

    @property
    def inverse(self) -> np.ndarray:
        return invert(self.matrix)

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping (N,2) src onto dst.

    Umeyama's closed form; returns a (2, 3) matrix.
    """
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    s, d = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / s.var(0).sum()
    linear = scale * rotation
    return np.hstack([linear, (dst_mean - linear @ src_mean)[:, None]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """Exact inverse of a (2, 3) affine matrix."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -linear @ matrix[:, 2:]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) affine applying ``inner`` then ``outer``."""
    result = outer[:, :2] @ inner
    result[:, 2] += outer[:, 2]
    return result


def transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def align(points5: np.ndarray, size: int = CROP_SIZE) -> Alignment:
    """The alignment putting five face points (eyes, nose, mouth corners) on the template."""
    return Alignment(similarity(points5, CROP_TEMPLATE * size / CROP_SIZE), size)


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Resample ``image`` (HxW or HxWxC) through a (2, 3) affine into a size x size array."""
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def template_matrix(template: np.ndarray) -> np.ndarray:
    """Crop -> recognizer input: the similarity taking CROP_TEMPLATE onto ``template``."""
    return similarity(CROP_TEMPLATE, template)
