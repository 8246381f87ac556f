"""Stage 8: verify each anonymized face against its original, and the ladder a face climbs while it is too close.

The anonymized photo is read at the original face's alignment (the crop the
pipeline worked on) and embedded by SFace and FaceNet, the two recognizers
the engine already runs; a face at or over either line is too close. dlib's
recognizer is never consulted: it is the judge of whether this holds for a
recognizer the engine never asked (docs/verification.md).

A face too close climbs ``ladder``: another person from the generator, the
next strength, the whole eyebrow-to-chin region; past the last step its box
is covered (or, under an album's ``on_face_failure = hold``, the photo held).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import fill, mask, recognition

# Cosine at or over which an anonymized face is still too close to its original:
# the cosine that 1% of impostor pairs reach on CelebA train (benchmarks/verify_lines.py),
# stricter than the same-person lines (SFace 0.363, FaceNet 0.5592 at 0.1% FAR).
LINES = {"sface": 0.320, "facenet": 0.443}

# Methods that can draw another person (a classical fill gives one answer), and the first identity
# per seed a redraw starts from: past every candidate the first fill can have drawn.
REDRAWN = {"generate": fill.VERIFY_CANDIDATES, "stylegan": fill.MAX_CANDIDATES}
RUNGS = ("fill", "redraw", "strength", "region", "fallback", "covered")
GAVE_UP = "verify: still too close"  # how the error of a face covered past the ladder's last step starts


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: fill again with this mask and these candidates (and this method, if set)."""

    name: str  # as recorded in FaceRecord.steps
    threshold: float  # the mask's attention threshold; 0 is the whole eyebrow-to-chin region
    first: int = 0  # the generator's first identity per seed (fill.generate_many)
    method: str | None = None  # another method from this step on (the face prior's fallback)


# A face the prior's natural fill leaves too close after its own steps is filled by the trained
# generator (the de-identifying fill), from the policy's mask up, before it is ever covered.
FALLBACK = "generate"


def ladder(method: str, threshold: float) -> tuple[Step, ...]:
    """The steps after a first fill by ``method`` at ``threshold``, in the order they are tried.

    ``stylegan``: another person, then the whole region (a whole natural face reads better than a
    larger patchwork); then ``FALLBACK``'s own fill at ``threshold`` and its ladder."""
    if method == "stylegan":
        own = [Step("redraw", threshold, first=REDRAWN[method])]
        if threshold > 0:
            own.append(Step("region", 0.0, first=REDRAWN[method]))
        return (*own, Step(f"fallback:{FALLBACK}", threshold, method=FALLBACK),
                *(Step(s.name, s.threshold, s.first, FALLBACK) for s in ladder(FALLBACK, threshold)))
    steps = []
    if method in REDRAWN:
        steps.append(Step("redraw", threshold, first=REDRAWN[method]))
    larger = [(t, name) for name, t in mask.STRENGTHS.items() if t < threshold]
    if larger:
        t, name = max(larger)
        steps.append(Step(f"strength:{name}", t))
    if threshold > 0:
        steps.append(Step("region", 0.0))
    return tuple(steps)


def similarities(originals: np.ndarray, anonymized: np.ndarray, device: str = "cpu") -> list[dict[str, float]]:
    """Per face, the cosine of the anonymized crop to the original one for each recognizer of ``LINES``.

    Both (N, CROP_SIZE, CROP_SIZE, 3) uint8 RGB canonical crops, in one pass per network.
    """
    n = len(originals)
    found: list[dict[str, float]] = [{} for _ in range(n)]
    for name in LINES:
        e = recognition.embed(np.concatenate([originals, anonymized]), name, device)
        for i, cosine in enumerate((e[:n] * e[n:]).sum(1)):
            found[i][f"{name}_cosine"] = float(cosine)
    return found


def excess(similarity: dict[str, float]) -> float:
    """How far over its line the recognizer nearest to calling it the same person is (negative: it passes)."""
    return max(similarity.get(f"{name}_cosine", -1.0) - line for name, line in LINES.items())


def too_close(similarity: dict[str, float]) -> list[str]:
    """The recognizers whose line the face is at or over (empty: it passes)."""
    return [name for name, line in LINES.items() if similarity.get(f"{name}_cosine", -1.0) >= line]


def rung(step: str) -> str:
    """The rung of RUNGS a step of ``FaceRecord.steps`` stands on: "strength:large" is "strength",
    the method's own name is the first "fill"."""
    name = step.split(":")[0]
    return name if name in RUNGS else "fill"


def gave_up(error: str | None) -> bool:
    """Was the face covered because it stayed too close after the ladder's last step (not because a stage failed)?"""
    return error is not None and error.startswith(GAVE_UP)
