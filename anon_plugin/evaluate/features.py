"""What the judges see of an output photo, always at the face found on the *original* photo.

Every anonymized photo is read at the reference face of its original (the
detector's box, dlib's 68 landmarks and the alignment found on the original
probe), so a method that breaks detection is still judged on the face it
produced:

- SFace and FaceNet embed the canonical crop ``align.warp(photo, alignment, 256)``
  (``recognition.embed``'s input path); FaceNet also gives its pooled
  1792-d features (FID-FaceNet, KID) from the same forward pass;
- dlib's ResNet embeds the photo at the original 68 landmarks;
- the attribute classifier reads the same canonical crop;
- dlib's HOG detector (not used by the pipeline) looks for the face anew.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import dlib
import numpy as np
import torch

from ..inference import registry, recognition
from ..inference.align import CROP_SIZE, warp
from ..errors import ModelError

FID_NETWORK = (
    "FID-FaceNet: FaceNet Inception-ResNet-v1 (davidsandberg 20180408-102900, CASIA-WebFace), "
    "1792-d global average pool after Block8, before the bottleneck; input the 160x160 RGB FaceNet crop "
    "(ArcFace 5-point frame zoomed out 10%) at the original probe's alignment. "
    "Not comparable to Inception FID."
)
HOG_UPSAMPLE = 1


@dataclass(frozen=True)
class Reference:
    """Where the face sits on the original photo: the pipeline's first (most confident) face."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    landmarks: np.ndarray  # (68, 2)
    alignment: np.ndarray  # (2, 3) photo -> canonical crop


@dataclass(frozen=True)
class Embeddings:
    sface: np.ndarray  # (N, 128) unit length
    facenet: np.ndarray  # (N, 512) unit length
    facenet_features: np.ndarray  # (N, 1792) pooled, for FID / KID
    dlib: np.ndarray  # (N, 128)


def crops(images: list[np.ndarray], reference: Reference) -> np.ndarray:
    """Canonical crops (N, 256, 256, 3) uint8 of the photos at the reference alignment."""
    return np.stack([warp(im, reference.alignment, CROP_SIZE) for im in images])


def _input(face_crops: np.ndarray, name: str) -> torch.Tensor:
    # ``recognition.embed``'s input, laid out channels-last: on one CPU thread both networks run
    # 25-35% faster that way (measured at batch 13); results agree with it to float rounding.
    return recognition.recognizer_input(face_crops, name).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def sface(face_crops: np.ndarray) -> np.ndarray:
    """SFace's unit embeddings (N, 128) of canonical crops, as ``recognition.embed(crops, "sface")``."""
    return torch.nn.functional.normalize(registry.load("sface")(_input(face_crops, "sface")), dim=1).numpy()


@torch.no_grad()
def facenet(face_crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FaceNet's unit embeddings (N, 512), as ``recognition.embed(crops, "facenet")``, and pooled features (N, 1792)."""
    model = registry.load("facenet")
    pooled = model.features(_input(face_crops, "facenet"))
    embedding = torch.nn.functional.normalize(model.head(pooled), dim=1)
    return embedding.numpy(), pooled.numpy()


def embed(images: list[np.ndarray], reference: Reference) -> tuple[Embeddings, np.ndarray]:
    """Every recognizer's view of the photos (RGB uint8, one size) at the reference face, and their crops."""
    face_crops = crops(images, reference)
    fn, pooled = facenet(face_crops)
    dl = np.stack([recognition.embed_dlib(im, reference.landmarks) for im in images])
    return Embeddings(sface(face_crops), fn, pooled, dl), face_crops


@functools.cache
def _hog() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


def hog_detects(image: np.ndarray, box: np.ndarray) -> bool:
    """Does dlib's HOG detector (upsample 1) find a face whose box centre lies inside ``box``?"""
    x0, y0, x1, y1 = box
    for r in _hog()(np.ascontiguousarray(image), HOG_UPSAMPLE):
        cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            return True
    return False


def attribute_model_key() -> str | None:
    """Checksum prefix of the attribute classifier's weights, None when they are not installed."""
    try:
        return registry.spec("attributes").sha256[:16]
    except ModelError:
        return None


def attributes(face_crops: np.ndarray) -> np.ndarray:
    """(N, 40) bool predictions of the project's attribute classifier, columns in its ``ATTRIBUTES`` order."""
    from ..inference.networks.attributes import predict

    return predict(face_crops)


def attribute_names() -> tuple[str, ...]:
    from ..inference.networks.attributes import ATTRIBUTES

    return tuple(ATTRIBUTES)
