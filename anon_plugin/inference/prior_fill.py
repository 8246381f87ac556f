"""The ``stylegan`` fill: the hole becomes the matching part of a photo of nobody from the face prior.

For each face and candidate:

1. **Latent.** z from the face's seed, w = mapping(z) truncated by ``PSI``,
   then moved along the learned trait directions (InterFaceGAN's linear edit,
   the least-norm step that meets every trait at once) so that the new face
   has the target's pose, expression, age, gender and glasses
   (``traits.measure`` on the target crop; ``Directions``).
2. **Synthesis** at 1024 px; YuNet and dlib find the new face's 68 points.
3. **Alignment** to the target: a similarity on the inner 51 points, then a
   smooth local warp (Gaussian radial basis) that puts the new eyes, nose,
   mouth and brows where the target's are. The 1024 px image is area-reduced
   to the crop's scale first: detail at the face's own size, never a small
   patch scaled up.
4. **Colour and light** from the target's own skin: the difference between
   target and new face on a ring just outside the hole, robustly weighted
   (a pixel where the two differ strongly, hair against skin, counts little)
   and spread smoothly into the hole. No boundary is pinned exactly, so dark
   brows or hair on the border never bleed into the eye sockets.
5. **Candidates and gate.** Each candidate is scored for realism (the colour
   step across the hole's border, the detail ratio, the landmarks re-found on
   the result against the target's) and checked by SFace against the
   original; the best candidate under ``fill.VERIFY_COSINE`` wins, else the
   least similar. Its scores are returned for the face's record.

Works on a crop of any size (the pipeline hands it one at the face's own
resolution, up to 1024); the crop's 68 points come with it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from . import align, landmarks, traits
from .networks.stylegan import Directions
from ..errors import StageError

PSI = 0.7  # truncation: 1 is the full variety of the prior, 0 its average face
INNER = slice(17, 68)  # brows, nose, eyes, mouth: what the warp aligns
WARP_SIGMA = 0.12  # of the crop size: how far a landmark's correction reaches
WARP_SMOOTHING = 0.5  # ridge of the warp's radial basis: the landmarks are met closely, not exactly
RING = 1 / 24  # of the crop size: the band outside the hole whose colour the fill takes
LIGHT_SIGMA = 1 / 20  # of the crop size: how smooth the colour correction is
ROBUST_GREY = 20.0  # a ring pixel whose colour differs by this much from the new face counts e^-1
ROBUST_ROUNDS = 2
SKIN_DELTA_E = 30.0  # a ring pixel this far (CIE76) from the target's skin tone counts e^-1
LIGHT_PRIOR = 0.02  # far from the ring the local correction fades to none
DETAIL_SIGMAS = (0.0, 0.4, 0.7, 1.0, 1.4, 2.0, 2.8)
DETAIL_SLACK = 1.5
GRAIN_SEED = 0
FADE = 1 / 40  # of the crop size: how deep inside the hole's edge the new face is fully in
YAW_LIMIT = 0.35  # the prior's samples turn at most about 0.31 (yaw of traits.geometry)
WARP_FOLLOW = 0.0  # how far the local warp follows the target's landmarks (1: exactly; its geometry is identity)
BANK_SEED_OFFSET = 7_919  # keeps the pipeline's draws apart from the bank's first samples


def seed_latent(seed: int, index: int) -> np.ndarray:
    """The z (512,) of a face's ``index``-th candidate under ``seed``."""
    from .networks.stylegan import latents

    return latents(BANK_SEED_OFFSET + seed * 1_000 + index)[0]


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
    crop: a similarity on the inner points, then the local warp (the jaw all the way, the inner
    points ``WARP_FOLLOW`` of it)."""
    matrix = align.similarity(points[INNER], target[INNER])
    moved = align.transform(matrix, points)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:  # area-reduce first, so the affine resampling never aliases
        factor = 1.5 * scale
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        matrix = align.compose(matrix, np.array([[1 / factor, 0, 0], [0, 1 / factor, 0]]))
    warped = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # The jaw is met (else the new face's neck or background shows inside the target's outline); the
    # inner points only part of the way, for their places are the old face's identity.
    follow = np.where(np.arange(68) < INNER.start, 1.0, WARP_FOLLOW)[:, None]
    field = _rbf_field(target, follow * (moved - target), size, WARP_SIGMA)
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


def _lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((image.clip(0, 255) / 255).astype(np.float32), cv2.COLOR_RGB2LAB)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB) * 255


def skin(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: the face inside its landmarks' hull but off the eyes, brows and mouth."""
    out = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(out, cv2.convexHull(points.astype(np.int32)), 1)
    width = max(2, round(size / 40))
    for part in (landmarks.RIGHT_EYE, landmarks.LEFT_EYE, slice(48, 60)):
        cv2.fillConvexPoly(out, cv2.convexHull(points[part].astype(np.int32)), 0)
        cv2.polylines(out, [points[part].astype(np.int32)], True, 0, width)
    for brow in (slice(17, 22), slice(22, 27)):
        cv2.polylines(out, [points[brow].astype(np.int32)], False, 0, 2 * width)
    return out.astype(bool)


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
    skin_mask = skin(points, size)
    target = _lab(crop.astype(np.float32))
    tone = target[skin_mask].mean(0) if skin_mask.sum() >= 16 else target[hole].mean(0)
    new = _lab(face)
    new += tone - (new[skin_mask].mean(0) if skin_mask.sum() >= 16 else new[hole].mean(0))
    face = _rgb(new)
    ring = cv2.dilate(hole.astype(np.uint8), _disk(max(2, round(RING * size)))).astype(bool) & ~hole
    # Only skin-coloured ring pixels speak for the light: background or hair at the face's edge does not.
    skin_like = np.exp(-(np.linalg.norm(target - tone, axis=2) / SKIN_DELTA_E) ** 2)
    weights = (ring * skin_like).astype(np.float32)
    diff = crop.astype(np.float32) - face
    sigma = LIGHT_SIGMA * size
    field = _field(diff, weights, sigma)
    for _ in range(ROBUST_ROUNDS):
        robust = np.exp(-(np.abs(diff - field).mean(2) / ROBUST_GREY) ** 2).astype(np.float32)
        field = _field(diff, weights * robust, sigma)
    return face + field


# ---- scores -------------------------------------------------------------------


def _laplacian_variance(image: np.ndarray, where: np.ndarray) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F)[where].var()) if where.any() else 0.0


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


def realism(s: dict[str, float]) -> float:
    """One number, higher is better: a step over the original's, lost or added detail and moved
    landmarks all cost."""
    step = max(0.0, s["border_step"] - s["border_step_original"]) / 8.0
    detail = abs(np.log(max(s["detail_ratio"], 1e-3)))
    return -(step + detail + 10.0 * s["landmark_error"])


# ---- the fill -----------------------------------------------------------------


@functools.cache
def _directions() -> Directions:
    from . import registry

    directions = registry.load("stylegan_directions")
    if directions.names != traits.NAMES:
        raise StageError("fill", f"the face prior's directions are for traits {directions.names}, "
                                 f"this version measures {traits.NAMES}")
    return directions


def synthesize(ws: np.ndarray, device: str) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """1024 px RGB images of ``ws`` (N, 512) with their 68 points, None where no face is found."""
    import torch

    from . import registry

    images = registry.load("stylegan", device).images(torch.from_numpy(ws))
    found = []
    for image in images:
        small = cv2.resize(image, (512, 512), interpolation=cv2.INTER_AREA)
        located = landmarks.locate(small)
        found.append(None if located is None else (image, located[1] * (image.shape[0] / 512)))
    return found


def target_traits(crops: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Traits of the faces to replace, read at the canonical crop size."""
    return traits.measure(canonical(crops), points * (align.CROP_SIZE / crops.shape[1]))


def canonical(crops: np.ndarray) -> np.ndarray:
    """Crops of any size (N, S, S, 3) area-reduced to the canonical CROP_SIZE (what the recognizers read)."""
    if crops.shape[1] == align.CROP_SIZE:
        return crops
    return np.stack([cv2.resize(c, (align.CROP_SIZE,) * 2, interpolation=cv2.INTER_AREA) for c in crops])


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


def compose(face: np.ndarray, crop: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The crop with the (aligned, relit) new face under the hole, faded in over ``FADE`` of the crop
    inside the hole's edge, so that no seam shows where the hole cuts across the skin."""
    depth = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 5)
    alpha = np.clip(depth / max(1.0, FADE * hole.shape[0]), 0, 1)[..., None]
    mixed = crop.astype(np.float32) * (1 - alpha) + face * alpha
    return np.where(hole[..., None], mixed.clip(0, 255).round().astype(np.uint8), crop)


def unserved(goals: np.ndarray, found_by_dlib: Sequence[bool]) -> list[str | None]:
    """Per face, why the prior cannot serve it (None: it can): a pose beyond those it draws, or
    landmarks that dlib lost (a profile or a covered face, placed from the median face)."""
    yaw = goals[:, traits.NAMES.index("yaw")]
    return [None if abs(y) <= YAW_LIMIT and ok else
            f"turned beyond the prior's poses (yaw {y:+.2f}, limit {YAW_LIMIT})" if ok else
            "dlib lost its landmarks (a profile or covered face)" for y, ok in zip(yaw, found_by_dlib)]


def stylegan_many(
    crops: np.ndarray, holes: np.ndarray, points: np.ndarray, seeds: list[int], device: str = "cpu",
    first: int = 0, candidates: int = 1, goals: np.ndarray | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Fill N faces: crops (N, S, S, 3) uint8 RGB, holes (N, S, S) bool, their 68 points (N, 68, 2) in
    the crop. Candidates ``first`` .. ``first + candidates - 1`` of each seed are drawn (a redraw
    starts past those tried); ``goals``: their traits when already measured (``target_traits``).
    Returns the filled crops and each face's scores."""
    from .fill import VERIFY_COSINE
    from .recognition import embed

    import torch

    from . import registry

    prior = registry.load("stylegan", device)
    directions = _directions()
    goals = target_traits(crops, points) if goals is None else goals
    sources = embed(canonical(crops), "sface", device)
    best = crops.copy()
    chosen: list[dict[str, Any]] = [{} for _ in crops]
    best_key = [(-np.inf, -np.inf)] * len(crops)
    for k in range(first, first + candidates):
        z = np.stack([seed_latent(s, k) for s in seeds])
        with torch.inference_mode():
            w = prior.truncate(prior.style(torch.from_numpy(z)), PSI).cpu().numpy()
        ws = np.stack([directions.edit(w[i], goals[i]) for i in range(len(crops))])
        made = synthesize(ws, device)
        composed = np.empty_like(crops)
        ok = np.zeros(len(crops), bool)
        for i, found in enumerate(made):
            if found is None:
                composed[i] = crops[i]
                continue
            face = aligned_face(found[0], found[1], points[i], crops.shape[1]).astype(np.float32)
            lit = match_light(face, crops[i], holes[i], points[i])
            composed[i] = compose(match_detail(lit, crops[i], holes[i]), crops[i], holes[i])
            ok[i] = True
        cosines = (embed(canonical(composed), "sface", device) * sources).sum(1)
        for i in np.flatnonzero(ok):
            s = scores(composed[i], crops[i], holes[i], points[i])
            key = (float(cosines[i] < VERIFY_COSINE), realism(s) if cosines[i] < VERIFY_COSINE else -cosines[i])
            if key > best_key[i]:
                best_key[i] = key
                best[i] = composed[i]
                chosen[i] = {**{n: round(v, 4) for n, v in s.items()}, "sface_cosine": round(float(cosines[i]), 4),
                             "candidate": k, "realism": round(realism(s), 4)}
    missing = [i for i, c in enumerate(chosen) if not c]
    if missing:
        raise StageError("fill", f"the face prior found no face in {candidates} candidate(s)")
    return best, chosen
