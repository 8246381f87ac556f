"""The ``stylegan`` fill: the hole becomes the matching part of a photo of nobody from the face prior.

For each face:

1. **Target.** Its traits, skin tone and SFace and FaceNet embeddings, read
   on the canonical crop (``traits``, ``recognition``).
2. **Candidates** (``prior_choice``): samples of the prior's measured bank
   near the target in gender, age, beard, glasses, tone and pose, the least
   like the person, in the order the face's seed gives; each moved along the
   learned directions of W to the target's traits and a step away from its
   identity.
3. **Screen.** Each candidate is drawn as a quarter-size preview (a tenth of
   the cost, ``PreviewHead``), placed in the canonical crop as the fill will
   place it, and read by SFace and FaceNet: the one the recognizers find least
   like the person wins (the hair, ears and outline around the hole keep part
   of the old identity, so this is measured on the composed face, not the new
   face alone).
4. **Synthesis** of the winner at 1024 px, only the part around its face
   (``stylegan.window_around``); YuNet and dlib find its 68 points.
5. **Placement** in the crop (``prior_place``): aligned to the target's
   landmarks, in its colour, light, sharpness and grain, the person's own
   glasses kept in front (``prior_look.glasses``).

Works on a crop of any size (the pipeline hands it one at the face's own
resolution, up to 1024); the crop's 68 points come with it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from . import align, landmarks, prior_choice, traits
from .device import faces_per_pass
from .prior_look import foreign, glasses, misfit, scores, shading_gap
from .prior_place import canonical, canonical_holes, place
from .networks.stylegan import Bank, Directions, PreviewHead, window_around, window_box
from .recognition import embed
from ..errors import StageError

YAW_LIMIT = 0.45  # the bank's samples turn up to about 0.3 (yaw of traits.geometry); edits take them further
ROUND = 16  # candidates of a first round at most: a redraw starts at ``first`` = ROUND and screens twice as many
SCREENED = 6  # candidates screened on previews per round, by default (AnonymizerConfig.candidates)
MARGIN = 0.03  # a preview must stay this far (cosine) under every verify bar to be taken at the policy's mask
PREVIEW = 4  # the preview is a quarter of the full picture
PREVIEW_BATCH = 8  # previews drawn per pass on CUDA (about 150 MB of features each); on the CPU one at a time,
# for a batch is slower there (measured on 2 cores: 0.13 s a preview alone, 0.35 s in a batch of 6)
PREVIEW_PAD = 0.25  # of the face's size, around the bank samples' faces: the part of the picture previews draw
MISFIT = 0.15  # eye distances: the most a candidate's 68 points may stray from the target's shape (misfit)
SHADING_MAX = 8.0  # CIELAB L: a passing candidate this close in shading (shading_gap) is taken in the seed's order
FOREIGN_MAX = 0.04  # the most of the hole a candidate may add that is not skin nor a feature (foreign)
WINDOW_PAD = 0.15  # of the face's size, around its landmarks: what the final synthesis draws


@functools.cache
def _directions() -> Directions:
    from . import registry

    directions: Directions = registry.load("stylegan_directions")
    if directions.names != traits.NAMES:
        raise StageError("fill", f"the face prior's directions are for traits {directions.names}, "
                                 f"this version measures {traits.NAMES}")
    return directions


@functools.cache
def _bank() -> Bank:
    from . import registry

    bank: Bank = registry.load("stylegan_bank")
    if bank.names != traits.NAMES:
        raise StageError("fill", f"the face prior's bank measured traits {bank.names}, this version {traits.NAMES}")
    return bank


def targets(crops: np.ndarray, points: np.ndarray, device: str = "cpu") -> list[prior_choice.Target]:
    """What the fill must match of each face: canonical crops (N, 256, 256, 3) with their (N, 68, 2) points."""
    from .verify import LINES

    measured = traits.measure(crops, points)
    embedded = {name: embed(crops, name, device) for name in LINES}
    return [prior_choice.Target(t, traits.skin_tone(c, p), embedded["sface"][i], embedded["facenet"][i])
            for i, (t, c, p) in enumerate(zip(measured, crops, points, strict=True))]


def unserved(goals: np.ndarray, found_by_dlib: Sequence[bool]) -> list[str | None]:
    """Per face, why the prior cannot serve it (None: it can): a pose beyond those it draws, or
    landmarks that dlib lost (a profile or a covered face, placed from the median face)."""
    yaw = goals[:, traits.NAMES.index("yaw")]
    return [None if abs(y) <= YAW_LIMIT and ok else
            f"turned beyond the prior's poses (yaw {y:+.2f}, limit {YAW_LIMIT})" if ok else
            "dlib lost its landmarks (a profile or covered face)" for y, ok in zip(yaw, found_by_dlib, strict=True)]


def _face_points(image: np.ndarray, hint: np.ndarray | None = None) -> np.ndarray | None:
    """The 68 points of the face in a picture of the prior, in its pixels: found by YuNet and dlib (at most
    512 px wide), or, given a ``hint`` (68 points from its preview), by dlib in the box they make (the
    hint itself where dlib loses it). None when no face is found."""
    if hint is not None:
        return _refined(image, hint)
    shrink = min(1.0, 512 / max(image.shape[:2]))
    small = image if shrink == 1.0 else cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    found = landmarks.locate(small)
    return None if found is None else found[1] / shrink


def _refined(image: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """dlib's 68 points of the face that ``hint`` (68 points) roughly marks in ``image``; ``hint`` where dlib
    loses it."""
    from .detect import Detection

    x0, y0 = hint.min(0)
    x1, y1 = hint.max(0)
    box = np.array([x0, y0 - 0.25 * (y1 - y0), x1, y1], np.float64)  # YuNet-like: brows to chin, plus forehead
    try:
        return landmarks.landmarks68(image, Detection(box, landmarks.five_points(hint), 1.0))
    except StageError:
        return hint


def _previews(head: PreviewHead, prior: Any, ws: np.ndarray,
              near: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Previews of w (M, 512), drawn only around the faces they are expected to show (``near``: (M, 68, 2)
    points in the 1024 px frame, the bank samples they were edited from), and the 68 points found in each
    (M, 68, 2; NaN where no face was), in the preview and in the 1024 px frame."""
    import torch

    x0, y0 = near.min((0, 1))
    x1, y1 = near.max((0, 1))
    pad = PREVIEW_PAD * max(x1 - x0, y1 - y0)
    window = window_around(x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    step = faces_per_pass(str(prior.device), PREVIEW_BATCH)
    previews = np.concatenate([head.images(prior, torch.from_numpy(ws[k:k + step]), window)
                               for k in range(0, len(ws), step)])
    points = np.full((len(ws), 68, 2), np.nan, np.float32)
    for k, preview in enumerate(previews):
        found = _face_points(preview)
        if found is not None:
            points[k] = found
    return previews, points, points * PREVIEW + np.array(window_box(window), np.float32)


def _screen(previews: np.ndarray, found: np.ndarray, crop: np.ndarray, hole: np.ndarray, points: np.ndarray,
            target: prior_choice.Target, eligible: np.ndarray, device: str,
            keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each ``eligible`` preview placed under ``hole`` (``keep`` in front) in the canonical ``crop``: how far
    over its bar the recognizer nearest to calling it the person is (``verify.excess``; negative: it passes),
    and its ``shading_gap`` to the original. +inf for the others, and for one that brings in more of what is
    ``foreign`` to a face than the original has there (``FOREIGN_MAX``). FaceNet reads only what SFace passed
    (a lower bound is enough for the rest: they fail either way)."""
    from .verify import LINES

    excess, gap = np.full(len(previews), np.inf), np.full(len(previews), np.inf)
    own = foreign(crop, points, hole)
    todo = []
    for c in np.flatnonzero(eligible):
        composed = place(previews[c], found[c], crop, hole, points, keep)
        if foreign(composed, points, hole) - own <= FOREIGN_MAX:
            todo.append((c, composed))
            gap[c] = shading_gap(composed, crop, hole)
    for name in LINES:
        if not todo:
            break
        cosines = embed(np.stack([x for _, x in todo]), name, device) @ getattr(target, name)
        for (c, _), over in zip(todo, cosines - LINES[name], strict=True):
            excess[c] = over if name == next(iter(LINES)) else max(excess[c], over)
        todo = [(c, x) for c, x in todo if excess[c] < 0]
    return excess, gap


def _synthesize(prior: Any, w: np.ndarray, hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The full picture of one w around its face (its 68 points ``hint`` in the 1024 px frame, from the
    preview), with that face's 68 points in the picture's pixels."""
    import torch

    x0, y0 = hint.min(0)
    x1, y1 = hint.max(0)
    pad = WINDOW_PAD * max(x1 - x0, y1 - y0)
    window = window_around(x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    image = prior.images(torch.from_numpy(w[None]), window)[0]
    return image, _refined(image, hint - np.array(window_box(window)))


def stylegan_many(
    crops: np.ndarray, holes: np.ndarray, points: np.ndarray, seeds: list[int], device: str = "cpu",
    first: int = 0, candidates: int = SCREENED, wanted: list[prior_choice.Target] | None = None,
    regions: np.ndarray | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Fill N faces: crops (N, S, S, 3) uint8 RGB, holes (N, S, S) bool, their 68 points (N, 68, 2) in
    the crop. Candidates ``first`` .. ``first + candidates - 1`` of each seed are screened (a redraw
    starts past those: ``ROUND``); ``wanted``: the faces' targets when already measured (``targets``).

    With ``regions`` (N, S, S), each face's whole eyebrow-to-chin region: where no candidate passes the
    verify bars with ``MARGIN`` under its hole (new eyes, nose and mouth among the old cheeks often still
    read as the person), the best one under the region fills the region instead.
    Candidates whose face does not fit the target's shape (``misfit`` over ``MISFIT``: turned or tilted
    otherwise than the edit asked) are never taken. Returns the filled crops and each face's scores, with
    "hole": "region" where the region was filled, or "unserved" and why where no candidate could serve
    (its crop is then returned as it was)."""
    from . import registry

    prior, head = registry.load("stylegan", device), registry.load("stylegan_preview")
    bank, directions = _bank(), _directions()
    size = crops.shape[1]
    small, small_points = canonical(crops), points * (align.CROP_SIZE / size)
    if wanted is None:
        wanted = targets(small, small_points, device)
    if first >= ROUND:
        candidates *= 2  # a redraw screens twice as many
    ks = np.arange(first, first + candidates)
    out = crops.copy()
    quality: list[dict[str, Any]] = []
    chosen = np.stack([prior_choice.candidates(bank, t, seed)[ks % prior_choice.ORDERED]
                       for t, seed in zip(wanted, seeds, strict=True)])
    w_mean = prior.w_mean.cpu().numpy()[0]
    ws = np.stack([[prior_choice.edit(directions, bank.w[b], t, w_mean) for b in row]
                   for row, t in zip(chosen, wanted, strict=True)])
    for i, target in enumerate(wanted):
        previews, found, hints = _previews(head, prior, ws[i], bank.landmarks[chosen[i]])
        fits = np.array([misfit(f, small_points[i]) if np.isfinite(f[0, 0]) else np.inf for f in found]) <= MISFIT
        masks = [holes[i]] if regions is None or np.array_equal(holes[i], regions[i]) else [holes[i], regions[i]]
        wears = target.traits[traits.NAMES.index("glasses")] >= prior_choice.SURE
        keep = glasses(crops[i], points[i]) if wears else None  # in front of the face: stays
        small_keep = None if keep is None else canonical_holes(keep[None])[0]
        for mask in masks:  # the policy's hole, then the whole region if no candidate passes there
            excess, gap = _screen(previews, found, small[i], canonical_holes(mask[None])[0], small_points[i], target,
                                  fits, device, small_keep)
            if (excess < -MARGIN).any():
                break
        grown = len(masks) > 1 and mask is masks[1]
        fits &= np.isfinite(excess)
        quality.append({"unserved": f"none of {candidates} candidate(s) fits the face's shape and look"})
        # The first in the seed's order that passes with shading close to the original's (the least like the
        # person is often the oddest), then the other passing ones, closest shading first; if none passes, the
        # least like the person. Only candidates that fit.
        passing = fits & (excess < 0)
        plain = passing & (gap <= SHADING_MAX)
        for c in np.lexsort((np.where(plain, 0, np.where(passing, gap, np.inf)), np.where(passing, -np.inf, excess),
                             ~fits)):
            if not fits[c]:
                break
            image, face = _synthesize(prior, ws[i, c], hints[c])
            if misfit(face, points[i]) > MISFIT:
                continue
            out[i] = place(image, face, crops[i], mask, points[i], keep)
            s = scores(out[i], crops[i], mask, points[i])
            quality[i] = {**{n: round(v, 4) for n, v in s.items()}, "candidate": int(ks[c]),
                          "sample": int(chosen[i, c]), "preview_excess": round(float(excess[c]), 4),
                          "shading_gap": round(float(gap[c]), 2),
                          **({"hole": "region"} if grown else {})}
            break
    return out, quality


