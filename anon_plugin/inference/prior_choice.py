"""Which face of nobody replaces a face: a sample of the face prior's bank, moved to fit.

The bank (``training.face_bank``) holds measured samples of the prior: their
latent w, traits (``traits.NAMES``), skin tone and the SFace and FaceNet
embeddings of their faces. For a face to replace:

1. **Pool.** Among the samples of the target's skin tone, gender and beard,
   and without glasses (``_alike``), those nearest the target in what an edit
   cannot fix well (age, lipstick, tone, the recognizers' main directions of
   variation: ``Bank.looks``) and, more loosely, in pose and expression
   (``RETRIEVAL_WEIGHTS``, in units of the bank's spread).
2. **Away from the person.** Of the pool, the half whose own faces are least
   like the target for SFace and FaceNet (cosine over each one's verify line).
   A natural face in the target's hair and outline keeps much of the old
   identity; starting from a face unlike it leaves the least.
3. **Order.** The face's seed shuffles that half: candidate k of a seed is
   always the same sample, and another seed gives another order.
4. **Edit.** Away from the prior's average face (``DISTINCT``), then
   InterFaceGAN's linear model of W (``Directions``): the least-norm step
   that brings every trait to the target's, each trait as far as its model
   can be trusted.

(A step along the direction of W that lowers the predicted similarity to the
person was tried: on the composed face it did not help, for the identity that
stays lives in the hair and outline around the hole, and larger steps turned
gender, age and glasses.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .networks.stylegan import Bank, Directions

# How far apart two faces are in each trait (in bank standard deviations) before it costs as much
# as one unit: what an edit moves well (pose, expression) counts a little, what it does not, a lot.
RETRIEVAL_WEIGHTS = {"yaw": 1.0, "pitch": 0.3, "mouth_open": 0.3, "eyes_open": 0.2, "smile": 0.5, "young": 1.5,
                     "male": 3.0, "glasses": 3.0, "beard": 2.0, "lipstick": 1.0}
TONE_WEIGHT = 2.0  # per bank standard deviation of each CIELAB channel
# Per bank standard deviation of each of the recognizers' main directions of variation over the bank
# (``Bank.looks``: ancestry, gender, age, build): the least like the person of a pool without them are mostly
# of another ancestry, which the photo around the face then betrays.
LOOKS_WEIGHT = 1.0
TONE_MAX = 10.0  # CIE76: a sample whose skin is further from the target's is not a candidate (while others are)
SURE = 1.0  # a classifier's logit this far from 0 is sure: gender must then match, and a beard is only drawn for
# a face surely bearded (and always then)
# The new face never wears glasses: the person's own frames stay in front of it (prior_fill.frames), and a
# second pair under them would show.
NO_GLASSES = -2.0  # the most a candidate's glasses logit may be, and the goal its edit aims at
POOL = 300  # samples nearest the target (of 2,400) ...
ORDERED = 32  # ... of which the least like it are the candidates, in the seed's order
# The bank's samples are drawn at truncation 0.7: near the average face, which every recognizer finds a little
# like everyone. Taken farther from it, more candidates pass on the hardest faces (at 1.3: 6 of 11 wild faces
# where none had passed in 12 candidates, against 5); beards, hats and their shadows grow too, which the screen
# turns away (prior_look.shading_gap).
DISTINCT = 1.3
EXTRAPOLATE = 1.0  # how far past the bank's 2nd-98th percentiles a trait may be moved (in its standard deviations)
EDIT_RIDGE = 0.05  # regularizes the joint trait edit (in bank standard deviations squared)


@dataclass(frozen=True)
class Target:
    """What the fill must match of one face, measured on its canonical crop."""

    traits: np.ndarray  # (K,) in traits.NAMES order
    tone: np.ndarray  # (3,) CIELAB
    sface: np.ndarray  # (128,) unit SFace embedding
    facenet: np.ndarray  # (512,) unit FaceNet embedding


def candidates(bank: Bank, target: Target, seed: int) -> np.ndarray:
    """Bank indices of the face's candidates, in the order its seed gives (``ORDERED`` of them)."""
    from .verify import LINES

    weights = np.array([RETRIEVAL_WEIGHTS[n] for n in bank.names])
    distance = (((bank.traits - target.traits) / bank.trait_spread) ** 2 * weights).sum(1)
    distance += TONE_WEIGHT * (((bank.tone - target.tone) / bank.tone_spread) ** 2).sum(1)
    looks = bank.looks(bank.sface, bank.facenet) - bank.looks(target.sface, target.facenet)
    distance += LOOKS_WEIGHT * (looks**2).sum(1)
    alike = _alike(bank, target)
    distance[~alike] += 1e6  # after every alike sample, in their own order
    pool = np.argsort(distance, kind="stable")[:max(min(POOL, int(alike.sum())), ORDERED)]
    likeness = np.maximum(bank.sface[pool] @ target.sface / LINES["sface"],
                          bank.facenet[pool] @ target.facenet / LINES["facenet"])  # the new face's own, alone
    unlike = pool[np.argsort(likeness, kind="stable")[:ORDERED]]
    return unlike[np.random.default_rng(seed).permutation(len(unlike))]


def _alike(bank: Bank, target: Target) -> np.ndarray:
    """(N,) bool: the samples that share what a viewer sees first: the skin's tone (``TONE_MAX``), gender where
    the classifier is sure of the target's (``SURE``), a beard exactly where it is sure of one; and no glasses
    (``NO_GLASSES``)."""
    alike = np.linalg.norm(bank.tone - target.tone, axis=1) <= TONE_MAX
    alike &= bank.traits[:, bank.names.index("glasses")] <= NO_GLASSES
    male = bank.names.index("male")
    if abs(target.traits[male]) >= SURE:
        alike &= np.sign(bank.traits[:, male]) == np.sign(target.traits[male])
    beard = bank.traits[:, bank.names.index("beard")]
    alike &= beard > 0 if target.traits[bank.names.index("beard")] >= SURE else beard < SURE
    return alike


def edit(directions: Directions, w: np.ndarray, target: Target, w_mean: np.ndarray) -> np.ndarray:
    """``w`` (512,) made ``DISTINCT`` times farther from the prior's mean face ``w_mean``, then moved by the
    least-norm step that brings every trait to the target's, each trait counted in the bank's standard
    deviations (a yaw of 0.1 and a gender logit of 3 are both a large change)."""
    w = w_mean + DISTINCT * (w - w_mean)
    d = directions.matrix.astype(np.float64) / directions.spread[:, None]
    goal = np.clip(target.traits, directions.low - EXTRAPOLATE * directions.spread,
                   directions.high + EXTRAPOLATE * directions.spread)
    glasses = directions.names.index("glasses")
    goal[glasses] = min(goal[glasses], NO_GLASSES)
    gap = directions.weight * (goal - (directions.matrix @ w + directions.intercept)) / directions.spread
    return (w + d.T @ np.linalg.solve(d @ d.T + EDIT_RIDGE * np.eye(len(d)), gap)).astype(np.float32)
