"""Placing a face of the prior in a face crop: aligned to the target, in its colour, light, sharpness and grain.

The ``stylegan`` fill (``prior_fill``) draws a face of nobody; this module puts
it where the target's face is, in any crop size (the fill works at the face's
own resolution):

1. **Alignment** (``aligned_face``): a similarity on the inner 51 points, then
   a smooth local warp that puts the new jaw and brows on the target's (where
   they meet the photo at the hole's edge); eyes, nose and mouth keep their
   own places, which are identity. A large picture is area-reduced to the
   crop's scale first: detail at the face's own size, never a small patch
   scaled up.
2. **Colour and light** (``match_light``): the target's skin tone, then the
   difference on a ring just outside the hole, robustly weighted and spread
   smoothly inside. No boundary is pinned exactly, so dark brows or hair on
   the border never bleed into the eye sockets.
3. **Sharpness and grain** of the target (``match_detail``).
4. **Composition** (``compose``): faded in just inside the hole's edge;
   what is in front of the face (the person's glasses) stays in front.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import align, traits

INNER = slice(17, 68)  # brows, nose, eyes, mouth: what the similarity aligns
WARP_SIGMA = 0.12  # of the crop size: how far a landmark's correction reaches
WARP_SMOOTHING = 0.1  # ridge of the warp's radial basis: points are met closely (0: exactly, folding where they clash)
# How far the local warp puts each of the new face's points on the target's (1: exactly): the jaw and the brows,
# which meet the photo at the hole's edge, all the way; eyes, nose and mouth not at all (their places are identity).
FOLLOW = np.array([1.0] * 27 + [0.0] * 41)
RING = 1 / 24  # of the crop size: the band outside the hole whose colour the fill takes
LIGHT_SIGMA = 1 / 20  # of the crop size: how smooth the colour correction is
LIGHT_GRID = 96  # px: the grid the smooth correction is found on
ROBUST_GREY = 20.0  # a ring pixel whose colour differs by this much from the new face counts e^-1
ROBUST_ROUNDS = 2
SKIN_DELTA_E = 30.0  # a ring pixel this far (CIE76) from the target's skin tone counts e^-1
LIGHT_PRIOR = 0.02  # far from the ring the local correction fades to none
DETAIL_SIGMAS = (0.0, 0.4, 0.7, 1.0, 1.4, 2.0, 2.8)
DETAIL_SLACK = 1.5
GRAIN_SEED = 0
FADE = 1 / 40  # of the crop size: how deep inside the hole's edge the new face is fully in


# ---- geometry -----------------------------------------------------------------


def _rbf_field(targets: np.ndarray, offsets: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """A smooth (size, size, 2) field equal to ``offsets`` at ``targets`` (Gaussian radial basis,
    lightly regularized), fading to zero far from them. Solved on a 64 px grid, then resized."""
    grid = 64
    scale = grid / size
    t = targets * scale
    s = sigma * grid
    d2 = ((t[:, None] - t[None]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * s * s)) + WARP_SMOOTHING * np.eye(len(t))
    weights = np.linalg.solve(kernel, offsets)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float64) + 0.5
    pixels = np.stack([xs.ravel(), ys.ravel()], 1)
    phi = np.exp(-((pixels[:, None] - t[None]) ** 2).sum(-1) / (2 * s * s))
    field = (phi @ weights).reshape(grid, grid, 2).astype(np.float32)
    return cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC)


def aligned_face(image: np.ndarray, points: np.ndarray, target: np.ndarray, size: int) -> np.ndarray:
    """``image`` (the new face, with its 68 ``points``) warped towards ``target`` (68, 2) in a size x size
    crop: a similarity on the inner points, then the local warp (``FOLLOW``)."""
    matrix = align.similarity(points[INNER], target[INNER])
    moved = align.transform(matrix, points)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:  # area-reduce first, so the affine resampling never aliases
        factor = 1.5 * scale
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        matrix = align.compose(matrix, np.array([[1 / factor, 0, 0], [0, 1 / factor, 0]]))
    warped = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # The jaw is met (else the new face's neck or background shows inside the target's outline), and the
    # brows (else the old brow's edge shows above the new one).
    field = _rbf_field(target, FOLLOW[:, None] * (moved - target), size, WARP_SIGMA)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return cv2.remap(warped, xs + field[..., 0], ys + field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# ---- colour -------------------------------------------------------------------


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)


def _smooth(values: np.ndarray, weights: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator of the weighted Gaussian average (normalized convolution) of (H, W, C)
    ``values``: their ratio is the average, kept apart so that callers can add a prior."""
    num = cv2.GaussianBlur(values * weights[..., None], (0, 0), sigma)
    den = cv2.GaussianBlur(weights, (0, 0), sigma)[..., None]
    return num, den


def _rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB) * 255


def _field(diff: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """The weighted local mean of ``diff``, with a coarser one where the weights are thin."""
    fine_num, fine_den = _smooth(diff, weights, sigma)
    coarse_num, coarse_den = _smooth(diff, weights, 3 * sigma)
    return (fine_num + coarse_num) / (fine_den + coarse_den + LIGHT_PRIOR)


def match_light(face: np.ndarray, crop: np.ndarray, hole: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``face`` (float32 RGB 0-255, aligned on ``points``) in the target's colour and light.

    First the skin tone: the mean LAB colour of the target's skin (three numbers, however large the
    hole) replaces the new face's. Then the light at the hole's edge, read only outside it: the
    difference between target and new face on a ring around the hole becomes a smooth field (the
    local weighted mean, by normalized convolution) that fades to nothing inside. The mean is robust
    (iteratively reweighted): hair over the target's temple or a shadow the new face lacks differs
    from the difference around it and counts little, so it never darkens an eye socket."""
    size = hole.shape[0]
    skin_mask = traits.skin(points, size)
    target = traits.lab(crop.astype(np.float32))
    tone = target[skin_mask].mean(0) if skin_mask.sum() >= 16 else target[hole].mean(0)
    new = traits.lab(face)
    new += tone - (new[skin_mask].mean(0) if skin_mask.sum() >= 16 else new[hole].mean(0))
    face = _rgb(new)
    ring = cv2.dilate(hole.astype(np.uint8), _disk(max(2, round(RING * size)))).astype(bool) & ~hole
    # Only skin-coloured ring pixels speak for the light: background or hair at the face's edge does not.
    skin_like = np.exp(-(np.linalg.norm(target - tone, axis=2) / SKIN_DELTA_E) ** 2)
    weights = (ring * skin_like).astype(np.float32)
    diff = crop.astype(np.float32) - face
    # The field is smooth (sigma 1/20 of the crop and more): it is found on a LIGHT_GRID px grid, then enlarged.
    grid = (min(size, LIGHT_GRID),) * 2
    small_diff = cv2.resize(diff, grid, interpolation=cv2.INTER_AREA)
    small_weights = cv2.resize(weights, grid, interpolation=cv2.INTER_AREA)
    sigma = LIGHT_SIGMA * grid[0]
    field = _field(small_diff, small_weights, sigma)
    for _ in range(ROBUST_ROUNDS):
        robust = np.exp(-(np.abs(small_diff - field).mean(2) / ROBUST_GREY) ** 2).astype(np.float32)
        field = _field(small_diff, small_weights * robust, sigma)
    return face + cv2.resize(field, (size, size), interpolation=cv2.INTER_LINEAR)


# ---- sharpness, composition ----------------------------------------------------


def _laplacian_variance(image: np.ndarray, where: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F)[where].var()) if where.any() else 0.0


def match_detail(face: np.ndarray, crop: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``face`` at the target's own sharpness and grain: a soft or small photo gets a soft new face, a
    grainy one a grainy face.

    The Laplacian variance under the hole is compared (one number of the target, no picture of it).
    A new face sharper than ``DETAIL_SLACK`` times the target takes the least blur of
    ``DETAIL_SIGMAS`` (crop px at 256) that brings it within; one smoother than the target over
    ``DETAIL_SLACK`` takes the grain it lacks (fixed Gaussian noise in luma: the Laplacian of noise of
    deviation s has variance 20 s^2)."""
    target = _laplacian_variance(crop, hole)
    scale = hole.shape[0] / align.CROP_SIZE
    for sigma in DETAIL_SIGMAS:
        soft = cv2.GaussianBlur(face, (0, 0), sigma * scale) if sigma else face
        own = _laplacian_variance(soft.clip(0, 255).astype(np.uint8), hole)
        if own <= target * DETAIL_SLACK:
            break
    if own < target / DETAIL_SLACK:
        deviation = np.sqrt((target - own) / 20.0)
        grain = np.random.default_rng(GRAIN_SEED).standard_normal(hole.shape).astype(np.float32)
        soft = soft + (deviation * grain)[..., None]
    return soft


def compose(face: np.ndarray, crop: np.ndarray, hole: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """The crop with the (aligned, relit) new face under the hole, faded in over ``FADE`` of the crop
    inside the hole's edge, so that no seam shows where the hole cuts across the skin; what is in front of
    the face (``keep``: the person's glasses) stays, with a one-pixel soft edge."""
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
    alpha = np.clip(depth / max(1.0, FADE * hole.shape[0]), 0, 1)
    if keep is not None and keep.any():
        alpha *= 1 - cv2.GaussianBlur(keep.astype(np.float32), (0, 0), 0.7)
    alpha = alpha[..., None]
    mixed = crop.astype(np.float32) * (1 - alpha) + face * alpha
    return np.where(hole[..., None], mixed.clip(0, 255).round().astype(np.uint8), crop)


def place(face: np.ndarray, points: np.ndarray, crop: np.ndarray, hole: np.ndarray, target: np.ndarray,
          keep: np.ndarray | None = None) -> np.ndarray:
    """A picture of the prior (with its face's 68 ``points``) placed in ``crop`` under ``hole``: aligned to the
    target's 68 points, in the target's colour, light, sharpness and grain; ``keep`` stays in front."""
    aligned = aligned_face(face, points, target, crop.shape[0]).astype(np.float32)
    lit = match_light(aligned, crop, hole, target)
    return compose(match_detail(lit, crop, hole), crop, hole, keep)


def canonical(crops: np.ndarray) -> np.ndarray:
    """Crops of any size (N, S, S, 3) area-reduced to the canonical CROP_SIZE (what the recognizers read)."""
    if crops.shape[1] == align.CROP_SIZE:
        return crops
    return np.stack([cv2.resize(c, (align.CROP_SIZE,) * 2, interpolation=cv2.INTER_AREA) for c in crops])


def canonical_holes(holes: np.ndarray) -> np.ndarray:
    """Holes of any size (N, S, S) at the canonical CROP_SIZE: any pixel the hole touches is in it."""
    if holes.shape[1] == align.CROP_SIZE:
        return holes
    return np.stack([cv2.resize(h.astype(np.float32), (align.CROP_SIZE,) * 2, interpolation=cv2.INTER_AREA) > 0
                     for h in holes])
