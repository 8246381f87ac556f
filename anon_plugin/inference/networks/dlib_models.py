"""dlib's 68-point shape predictor and ResNet face recognizer."""

from pathlib import Path

import dlib


def load_shape_predictor(path: Path) -> dlib.shape_predictor:
    return dlib.shape_predictor(str(path))


def load_face_recognizer(path: Path) -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(path))
