"""Stage 7: paste the filled crop back into the photo through the exact inverse warp.

The hole is feathered in photo pixels; where the feathered alpha is zero the
output pixel *is* the input pixel (not a resampled copy of it). ``seamless``
(Poisson blending) lets a generated fill meet the photo at the hole's border
before that.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .align import compose, invert

# Feather width in canonical-crop pixels (at 256), about a tenth of an eye.
FEATHER_SIGMA = 3.0


def _window(image_shape: tuple[int, ...], corners: np.ndarray, pad: int) -> tuple[int, int, int, int]:
    h, w = image_shape[:2]
    x0, y0 = np.floor(corners.min(0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(0)).astype(int) + pad + 1
    return max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)


def paste_back(
    image: np.ndarray, filled: np.ndarray, hole: np.ndarray, matrix: np.ndarray, in_place: bool = False,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 with ``filled`` (S, S, 3) composited under ``hole`` (S, S).

    ``matrix`` (2, 3) maps the photo to the crop. Only a window around the
    face is touched (``in_place``: in ``image`` itself, which is returned).
    ``interpolation`` resamples the fill (a fill at the face's own resolution keeps its detail
    through ``cv2.INTER_CUBIC``).
    """
    out = image if in_place else image.copy()
    if not hole.any():
        return out
    to_photo = invert(matrix)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))  # crop px per photo px
    sigma = max(0.8, FEATHER_SIGMA / scale)
    radius = math.ceil(3 * sigma)
    ys, xs = np.nonzero(hole)
    corners = np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.min(), ys.max()], [xs.max(), ys.max()]], float)
    x0, y0, x1, y1 = _window(image.shape, corners @ to_photo[:, :2].T + to_photo[:, 2], 2 * radius + 2)
    if x1 <= x0 or y1 <= y0:
        return out
    into_window = compose(np.array([[1.0, 0, -x0], [0, 1.0, -y0]]), to_photo)
    size = (x1 - x0, y1 - y0)
    fill = cv2.warpAffine(filled, into_window, size, flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(hole.astype(np.float32), into_window, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    # Grow by one sigma first so that the hole's own edge is mostly replaced;
    # a finite kernel keeps alpha exactly zero beyond the feather.
    alpha = cv2.dilate(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * round(sigma) + 1,) * 2))
    alpha = cv2.GaussianBlur(alpha, (2 * radius + 1, 2 * radius + 1), sigma)[..., None]
    window = out[y0:y1, x0:x1].astype(np.float32)
    mixed = np.round(window * (1 - alpha) + fill.astype(np.float32) * alpha).astype(np.uint8)
    out[y0:y1, x0:x1] = np.where(alpha > 0, mixed, out[y0:y1, x0:x1])
    return out


# A face narrower than this (photo px) is covered in one block, its mean colour: a mosaic of
# so small a face keeps most of what it shows. Measured on 59 CelebA eval faces shrunk to 20 px
# wide: dlib still matched 3 of them through 8 blocks and 1 through 3 blocks, none through one
# block; at 30 px and at full size none through 8 blocks.
SOLID_BELOW = 32


def cover(image: np.ndarray, box: np.ndarray, blocks: int = 8, in_place: bool = False) -> np.ndarray:
    """Fail closed: a copy of ``image`` with the face box (grown by 15%) pixelated into coarse blocks
    (one block for a face under SOLID_BELOW px wide; ``in_place``: in ``image`` itself)."""
    out = image if in_place else image.copy()
    x0, y0, x1, y1 = box
    blocks = 1 if x1 - x0 < SOLID_BELOW else blocks
    gx, gy = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
    h, w = image.shape[:2]
    x0, y0 = max(int(x0 - gx), 0), max(int(y0 - gy), 0)
    x1, y1 = min(int(math.ceil(x1 + gx)), w), min(int(math.ceil(y1 + gy)), h)
    if x1 <= x0 or y1 <= y0:
        return out
    region = out[y0:y1, x0:x1]
    small = cv2.resize(region, (min(blocks, x1 - x0), min(blocks, y1 - y0)), interpolation=cv2.INTER_AREA)
    out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return out


_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)


def _neighbours(a: np.ndarray) -> np.ndarray:
    """Sum of every pixel's four neighbours (zero beyond the border)."""
    return cv2.filter2D(a, -1, _CROSS, borderType=cv2.BORDER_CONSTANT)


def _poisson(fill: np.ndarray, image: np.ndarray, hole: np.ndarray, edge: float, tol: float = 1e-3) -> np.ndarray:
    """Solve for the hole's pixels (conjugate gradients): keep the fill's gradients
    between hole pixels; each photo pixel next to the hole pulls its neighbour in
    the hole towards itself with weight exp(-(d / edge)^2), where d is how far
    the photo is from the fill there, floored at 0.02 so the system stays solvable."""
    h = hole.astype(np.float32)[..., None]
    inside = _neighbours(h[..., 0])[..., None]  # hole neighbours of each pixel
    border = (inside[..., 0] > 0) & ~hole
    if not border.any():  # a hole over the whole image: nothing to meet
        return fill
    near = _neighbours(fill * h) / np.maximum(inside, 1)  # the fill next to each border pixel
    d = np.abs(image - near).mean(2, keepdims=True)
    weight = np.where(border[..., None], np.maximum(np.exp(-(d / edge) ** 2), 0.02), 0).astype(np.float32)
    diagonal = inside + _neighbours(weight[..., 0])[..., None]
    b = h * (inside * fill - _neighbours(fill * h) + _neighbours(weight * image))

    def apply(v):
        return h * (diagonal * v - _neighbours(v * h))

    u = fill * h
    r = b - apply(u)
    p, rr = r.copy(), (r * r).sum((0, 1))
    bb = (b * b).sum((0, 1)) + 1e-9
    for _ in range(4 * max(hole.shape)):
        ap = apply(p)
        alpha = rr / np.maximum((p * ap).sum((0, 1)), 1e-12)
        u += alpha * p
        r -= alpha * ap
        rr_next = (r * r).sum((0, 1))
        if (rr_next / bb).max() < tol**2:
            break
        p = r + (rr_next / np.maximum(rr, 1e-12)) * p
        rr = rr_next
    return np.where(hole[..., None], u, fill)


def seamless(fill: np.ndarray, image: np.ndarray, hole: np.ndarray, edge: float = 30.0) -> np.ndarray:
    """``fill`` (H, W, 3) float32, 0-255, with the pixels under ``hole`` (H, W) bool recoloured to
    meet ``image`` at the hole's border: Poisson blending. A colour or light cast of the fill
    is carried away smoothly; its shapes (gradients) stay. A strong edge of the photo met by
    the border (lips, hair, a frame of glasses) binds little (``edge``, in grey levels), so
    it does not bleed in. The correction is smooth: it is solved at half resolution.
    """
    if not hole.any():
        return fill
    h, w = hole.shape
    half = (max(w // 2, 1), max(h // 2, 1))
    small_fill = cv2.resize(fill, half, interpolation=cv2.INTER_AREA)
    small_image = cv2.resize(image.astype(np.float32), half, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole.astype(np.float32), half, interpolation=cv2.INTER_AREA) > 0
    correction = _poisson(small_fill, small_image, small_hole, edge) - small_fill
    return fill + np.where(hole[..., None], cv2.resize(correction, (w, h), interpolation=cv2.INTER_LINEAR), 0)
