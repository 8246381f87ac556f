"""Stage 6: fill the hole. Every method honours one contract:

    filler(crop, hole_mask, seed) -> crop

``crop`` is the canonical face crop, RGB uint8 (S, S, 3); ``hole_mask`` bool
(S, S), True = regenerate. The result has the crop's shape and dtype; only
its pixels under the hole are used. Methods are looked up by name in FILLERS.

``fill_many`` fills N faces at once and returns each face's scores beside the
crops (empty but for ``stylegan``). The methods of ``NATIVE`` are handed the
crop at the face's own resolution (S up to 1024, ``native_size``) and its 68
points; the others the canonical 256 px crop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice

import cv2
import numpy as np

from . import prior_fill
from .align import CROP_SIZE

Filler = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _ring(hole: np.ndarray, width: int) -> np.ndarray:
    """Pixels just outside the hole."""
    grown = cv2.dilate(hole.astype(np.uint8), np.ones((2 * width + 1,) * 2, np.uint8))
    return grown.astype(bool) & ~hole


def blur(crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """Gaussian blur, sigma 3% of the crop (8 px at 256): the usual press blur."""
    sigma = 0.03 * crop.shape[0]
    return cv2.GaussianBlur(crop, (0, 0), sigma)


def pixelate(crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """Mosaic of 16 x 16 blocks over the crop (a block is ~1/6 of the eye distance)."""
    size = crop.shape[0]
    small = cv2.resize(crop, (16, 16), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)


def solid(crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """The hole painted in the mean colour of the skin around it."""
    ring = _ring(hole, max(2, crop.shape[0] // 64))
    colour = crop[ring].mean(0) if ring.any() else crop.reshape(-1, 3).mean(0)
    return np.broadcast_to(np.round(colour).astype(np.uint8), crop.shape).copy()


def inpaint(crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """OpenCV's Telea inpainting from the hole's border inwards."""
    radius = max(3, crop.shape[0] // 50)
    return cv2.inpaint(crop, hole.astype(np.uint8), radius, cv2.INPAINT_TELEA)


# A generated face is checked by SFace against the original crop; "same person"
# starts at cosine 0.363, so a candidate must stay clearly below it.
VERIFY_COSINE = 0.3
VERIFY_CANDIDATES = 4
MAX_CANDIDATES = prior_fill.ROUND  # the stylegan fill's candidates per round (AnonymizerConfig.candidates) at most
SCREENED = prior_fill.SCREENED  # ... and by default


def generate(crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """The trained generator: the hole becomes part of a new person, chosen by ``seed``.

    One face of ``generate_many``, on the CPU.
    """
    return generate_many(crop[None], hole[None], [seed])[0]


def generate_many(
    crops: np.ndarray, holes: np.ndarray, seeds: Sequence[int], device: str = "cpu", first: int = 0
) -> np.ndarray:
    """``generate`` for N faces at once, each network pass over all N on ``device``.

    crops (N, S, S, 3) uint8 RGB, holes (N, S, S) bool -> (N, S, S, 3) uint8.
    Runs at the generator's resolution (128); its output is made to meet the
    face at the hole's border (``blend.seamless``) and upsampled into the
    crop's hole, the rest of the crop is kept. Each candidate person is
    verified: while SFace still finds a face too close to its original
    (cosine >= VERIFY_COSINE), that face's seed gives its next identity, up
    to VERIFY_CANDIDATES; the least similar candidate is kept. Each face's
    candidates depend on its own seed only, not on the others in the batch.
    ``first`` skips that many of each seed's identities: a redraw
    (``verify.ladder``) starts past the ones already tried.
    """
    import torch

    from . import registry
    from .blend import seamless
    from .networks.generator import identity_codes
    from .recognition import embed

    model = registry.load("generator", device)
    size = model.config.size
    small = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])
    # Any pixel the hole touches is regenerated: the small hole covers the large one.
    small_holes = np.stack([cv2.resize(h.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0
                            for h in holes])
    x = torch.from_numpy(small).permute(0, 3, 1, 2).float().to(device) / 127.5 - 1
    m = torch.from_numpy(small_holes)[:, None].float().to(device)
    sources = embed(crops, "sface", device)
    bank = model.identity_bank.cpu()
    codes = [islice(identity_codes(bank, seed, source), first, None)
             for seed, source in zip(seeds, sources, strict=True)]
    best = crops.copy()
    best_cosine = np.full(len(crops), np.inf)
    pending = np.arange(len(crops))
    for _ in range(VERIFY_CANDIDATES):
        z = torch.from_numpy(np.stack([next(codes[i]) for i in pending])).to(device)
        with torch.inference_mode():
            y = model(x[pending], m[pending], z).permute(0, 2, 3, 1).cpu().numpy()
        candidates = np.empty((len(pending), *crops.shape[1:]), np.uint8)
        for k, i in enumerate(pending):
            blended = seamless((y[k] + 1) * 127.5, small[i], small_holes[i])
            up = cv2.resize(blended.clip(0, 255).round().astype(np.uint8), crops.shape[2:0:-1],
                            interpolation=cv2.INTER_CUBIC)
            candidates[k] = np.where(holes[i][..., None], up, crops[i])
        cosines = (embed(candidates, "sface", device) * sources[pending]).sum(1)
        better = cosines < best_cosine[pending]
        best[pending[better]] = candidates[better]
        best_cosine[pending[better]] = cosines[better]
        pending = pending[cosines >= VERIFY_COSINE]
        if not len(pending):
            break
    return best


def stylegan(crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """The face prior (``prior_fill``): the hole becomes the matching part of a photo of nobody.

    One face of ``fill_many``, on the CPU, its landmarks found on the crop itself (``FALLBACK`` where the
    prior cannot serve it).
    """
    return fill_many("stylegan", crop[None], hole[None], [seed])[0][0]


def _crop_landmarks(crop: np.ndarray) -> np.ndarray:
    """68 points of the face an aligned crop is centred on (the median face where dlib loses it)."""
    from . import landmarks
    from .align import CROP_TEMPLATE
    from .detect import Detection
    from ..errors import StageError

    scale = crop.shape[0] / CROP_SIZE
    eyes = CROP_TEMPLATE * scale
    box = np.array([0.2, 0.2, 0.8, 0.9]) * crop.shape[0]
    try:
        return landmarks.landmarks68(crop, Detection(box, eyes, 1.0))
    except StageError:
        return landmarks.mean_face() * scale


FALLBACK = "generate"  # what fills a face the prior cannot serve (prior_fill.unserved)


def _stylegan_or_fallback(
    crops: np.ndarray, holes: np.ndarray, points: np.ndarray | None, seeds: Sequence[int], device: str, first: int,
    candidates: int, found_by_dlib: list[bool], regions: np.ndarray | None,
) -> tuple[np.ndarray, list[dict]]:
    """The prior's fill where it can serve the face, ``FALLBACK`` (at the canonical size) where it cannot,
    its reason recorded in the face's scores."""
    if points is None:
        points = np.stack([_crop_landmarks(c) for c in crops])
    wanted = prior_fill.targets(prior_fill.canonical(crops), points * (CROP_SIZE / crops.shape[1]), device)
    reasons = prior_fill.unserved(np.stack([t.traits for t in wanted]), found_by_dlib)
    out = crops.copy()
    quality: list[dict] = [{} for _ in crops]
    served = [i for i, r in enumerate(reasons) if r is None]
    if served:
        filled, found = prior_fill.stylegan_many(
            crops[served], holes[served], points[served], [seeds[i] for i in served], device, first, candidates,
            [wanted[i] for i in served], None if regions is None else regions[served])
        for i, o, q in zip(served, filled, found, strict=True):
            out[i], quality[i], reasons[i] = o, q, q.get("unserved")
    rest = [i for i, r in enumerate(reasons) if r is not None]
    if rest:
        size = crops.shape[1]
        small = prior_fill.canonical(crops[rest])
        small_holes = np.stack([cv2.resize(holes[i].astype(np.uint8), (CROP_SIZE,) * 2,
                                           interpolation=cv2.INTER_NEAREST) > 0 for i in rest])
        filled = generate_many(small, small_holes, [seeds[i] for i in rest], device, first)
        for i, f in zip(rest, filled, strict=True):
            out[i] = f if size == CROP_SIZE else cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC)
            quality[i] = {"fallback": FALLBACK, "reason": reasons[i]}
    return out, quality


FILLERS: dict[str, Filler] = {
    "blur": blur, "pixelate": pixelate, "solid": solid, "inpaint": inpaint, "generate": generate,
    "stylegan": stylegan,
}
# The registry's models each method loads (``batch.models_for``): the generator checks its candidates with
# SFace; the prior measures traits and embeds the face to match and screen with both recognizers.
MODELS: dict[str, frozenset[str]] = {
    "blur": frozenset(), "pixelate": frozenset(), "solid": frozenset(), "inpaint": frozenset(),
    "generate": frozenset({"generator", "sface"}),
    "stylegan": frozenset({"stylegan", "stylegan_bank", "stylegan_directions", "stylegan_preview", "attributes",
                           "sface", "facenet"}),
}
DEFAULT_METHOD = "generate"  # the default policy's (policies.Policy.method)
NATIVE = frozenset({"stylegan"})  # methods filled at the face's own resolution, with its landmarks
NATIVE_MAX = 1024  # the face prior's own size: a crop is never made larger


def native_size(scale: float) -> int:
    """The crop size at which a face whose canonical crop has ``scale`` crop px per photo px keeps its
    own detail: CROP_SIZE, or larger (a multiple of 32, at most NATIVE_MAX) for a face bigger than that."""
    return int(min(NATIVE_MAX, max(CROP_SIZE, 32 * np.ceil(CROP_SIZE / max(scale, 1e-6) / 32))))


def fill_many(
    name: str, crops: np.ndarray, holes: np.ndarray, seeds: Sequence[int], device: str = "cpu", first: int = 0,
    points: np.ndarray | None = None, candidates: int = SCREENED, found_by_dlib: Sequence[bool] | None = None,
    regions: np.ndarray | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """Fill N faces with method ``name``: the networks in one batch on ``device``, the others one by one.

    ``first``: the generator's or prior's first identity per seed (see ``generate_many``); ``points``
    (N, 68, 2) in the crops, ``candidates``, ``found_by_dlib`` (were the points found, or placed from
    the median face) and ``regions`` (the eyebrow-to-chin regions, which it may fill instead of a hole
    too small to hide the person) serve ``stylegan``. The other methods ignore them.
    Returns the filled crops and each face's scores.
    """
    if name == "generate":
        return generate_many(crops, holes, seeds, device, first), [{} for _ in crops]
    if name == "stylegan":
        trusted = [True] * len(crops) if found_by_dlib is None else list(found_by_dlib)
        return _stylegan_or_fallback(crops, holes, points, seeds, device, first, candidates, trusted, regions)
    fill = filler(name)
    return np.stack([fill(c, h, s) for c, h, s in zip(crops, holes, seeds, strict=True)]), [{} for _ in crops]


def filler(name: str) -> Filler:
    try:
        return FILLERS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(FILLERS)}") from None
