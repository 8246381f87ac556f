"""Stage 6: fill the hole. Every method honours one contract:

    filler(crop, hole_mask, seed) -> crop

``crop`` is the canonical face crop, RGB uint8 (S, S, 3); ``hole_mask`` bool
(S, S), True = regenerate. The result has the crop's shape and dtype; only
its pixels under the hole are used. Methods are looked up by name in FILLERS.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

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


def generate(crop: np.ndarray, hole: np.ndarray, seed: int = 0) -> np.ndarray:
    """The trained generator: the hole becomes part of a new person, chosen by ``seed``.

    Runs at the generator's resolution (128); its output is made to meet the
    face at the hole's border (``blend.seamless``) and upsampled into the
    crop's hole, the rest of the crop is kept. Each candidate person is
    verified: while SFace still finds the result too close to the original
    (cosine >= VERIFY_COSINE), the seed's next identity is tried, up to
    VERIFY_CANDIDATES; the least similar candidate is kept.
    """
    import itertools

    import torch

    from . import registry
    from .blend import seamless
    from .networks.generator import identity_codes
    from .recognition import embed

    model = registry.load("generator")
    size = model.config.size
    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    # Any pixel the hole touches is regenerated: the small hole covers the large one.
    small_hole = cv2.resize(hole.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0
    x = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 127.5 - 1
    m = torch.from_numpy(small_hole)[None, None].float()
    source = embed(crop[None], "sface")[0]
    best, best_cosine = crop, np.inf
    for code in itertools.islice(identity_codes(model.identity_bank, seed, source), VERIFY_CANDIDATES):
        with torch.inference_mode():
            y = model(x, m, torch.from_numpy(code)[None])
        y = seamless((y[0].permute(1, 2, 0).numpy() + 1) * 127.5, small, small_hole)
        up = cv2.resize(y.clip(0, 255).round().astype(np.uint8), crop.shape[1::-1], interpolation=cv2.INTER_CUBIC)
        candidate = np.where(hole[..., None], up, crop)
        cosine = float(embed(candidate[None], "sface")[0] @ source)
        if cosine < best_cosine:
            best, best_cosine = candidate, cosine
        if cosine < VERIFY_COSINE:
            break
    return best


FILLERS: dict[str, Filler] = {
    "blur": blur, "pixelate": pixelate, "solid": solid, "inpaint": inpaint, "generate": generate,
}
DEFAULT_METHOD = "inpaint"


def filler(name: str) -> Filler:
    try:
        return FILLERS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(FILLERS)}") from None
