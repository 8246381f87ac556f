"""Face embeddings from the three recognizers, shared by saliency, reports and evaluation.

SFace and FaceNet are PyTorch modules fed fixed resamplings of the canonical
crop; dlib's ResNet (a judge only, never used to decide masks) reads the
photo with its 68 landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import dlib
import numpy as np
import torch

from . import registry
from .align import ARCFACE_112, template_matrix, warp


@dataclass(frozen=True)
class Recognizer:
    name: str
    size: int
    template: np.ndarray  # (5, 2) where the five face points sit in the input
    threshold: float  # "same person" above this cosine (below this distance for dlib)


RECOGNIZERS = {
    "sface": Recognizer("sface", 112, ARCFACE_112, 0.363),
    # FaceNet was trained on looser MTCNN crops: the ArcFace frame, zoomed out by 10%.
    "facenet": Recognizer("facenet", 160, (ARCFACE_112 - 56.0) * (160 / 112) * 0.9 + 80.0, float("nan")),
}
DLIB_THRESHOLD = 0.6


def recognizer_input(crops: np.ndarray, name: str) -> torch.Tensor:
    """Canonical crops (N, CROP_SIZE, CROP_SIZE, 3) uint8 RGB -> the recognizer's input, (N, 3, s, s) float 0-255."""
    r = RECOGNIZERS[name]
    matrix = template_matrix(r.template)
    batch = np.stack([warp(c, matrix, r.size) for c in crops])
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float()


@torch.no_grad()
def embed(crops: np.ndarray, name: str, device: str = "cpu") -> np.ndarray:
    """Unit-length embeddings (N, D) of canonical crops (N, CROP_SIZE, CROP_SIZE, 3) uint8 RGB."""
    e = registry.load(name, device)(recognizer_input(crops, name).to(device))
    return torch.nn.functional.normalize(e, dim=1).cpu().numpy()


def embed_dlib(image: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """dlib ResNet's 128-d descriptor of the face with these landmarks in an RGB uint8 image."""
    x0, y0 = points68.min(0)
    x1, y1 = points68.max(0)
    shape = dlib.full_object_detection(
        dlib.rectangle(int(x0), int(y0), int(x1), int(y1)),
        [dlib.point(int(round(x)), int(round(y))) for x, y in points68],
    )
    return np.array(registry.load("dlib_resnet").compute_face_descriptor(np.ascontiguousarray(image), shape))


def still_matched_by(similarity: dict[str, float]) -> list[str]:
    """Recognizers that still call the face before and after the same person, from a
    FaceRecord's ``similarity``: SFace at cosine 0.363 or more, dlib at distance under
    0.6 (their published lines; FaceNet has none, so it is reported but never judged here)."""
    matched = []
    if similarity.get("sface_cosine", -1.0) >= RECOGNIZERS["sface"].threshold:
        matched.append("sface")
    if similarity.get("dlib_distance", np.inf) < DLIB_THRESHOLD:
        matched.append("dlib")
    return matched
