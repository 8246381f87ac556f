import math
import socket

import cv2
import numpy as np
import pytest
from PIL import Image

from anon_plugin import Anonymizer
from anon_plugin.inference import saliency
from anon_plugin.inference.align import invert
from anon_plugin.inference.blend import FEATHER_SIGMA
from anon_plugin.inference.recognition import still_matched_by


def _allowed(image_shape, face) -> np.ndarray:
    """Photo pixels the blend may touch for this face: the hole warped back, grown by the feather."""
    h, w = image_shape[:2]
    hole = cv2.warpAffine(face.hole_mask.astype(np.uint8), invert(face.alignment), (w, h),
                          flags=cv2.INTER_NEAREST)
    scale = math.sqrt(abs(np.linalg.det(face.alignment[:, :2])))
    sigma = max(0.8, FEATHER_SIGMA / scale)
    grow = math.ceil(3 * sigma) + round(sigma) + 2
    return cv2.dilate(hole, np.ones((2 * grow + 1,) * 2, np.uint8)).astype(bool)


@pytest.fixture(scope="module")
def anonymizer():
    # The stages themselves; verification and its ladder are tested in test_verify.py.
    return Anonymizer(verify=False)


def test_only_the_masked_region_changes(wild_photos, anonymizer):
    for path in wild_photos[:8]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        result = anonymizer.anonymize(rgb)
        assert result.faces and not any(f.covered for f in result.faces)
        changed = (result.image != rgb).any(axis=2)
        allowed = np.zeros(changed.shape, bool)
        for face in result.faces:
            allowed |= _allowed(rgb.shape, face)
        assert not (changed & ~allowed).any(), f"{path.name}: pixels changed outside the mask"
        assert changed.sum() > 0.3 * sum(f.hole_mask.sum() / (f.alignment[0, 0] ** 2 + f.alignment[0, 1] ** 2)
                                         for f in result.faces), f"{path.name}: the mask was barely filled"


def test_every_input_kind_gives_the_same_result(wild_photos, anonymizer):
    path = wild_photos[3]
    a = anonymizer.anonymize(path)
    b = anonymizer.anonymize(Image.open(path))
    c = anonymizer.anonymize(np.asarray(Image.open(path).convert("RGB")))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.image, c.image)
    face = a.faces[0]
    assert face.box.shape == (4,) and face.landmarks.shape == (68, 2)
    assert face.attention.shape == face.hole_mask.shape == (256, 256)
    assert 0 < face.mask_area < 1 and face.detection_score > 0.6


def test_photo_without_a_face_is_returned_unchanged(anonymizer):
    rng = np.random.default_rng(0)
    sky = np.clip(rng.normal(128, 20, (300, 400, 3)), 0, 255).astype(np.uint8)
    result = anonymizer.anonymize(sky)
    assert result.faces == ()
    np.testing.assert_array_equal(result.image, sky)


def _pixelated(result, rgb):
    face = result.faces[0]
    x0, y0, x1, y1 = face.box.astype(int)
    inner = result.image[y0 + 4:y1 - 4, x0 + 4:x1 - 4].reshape(-1, 3)
    return face.covered and len(np.unique(inner, axis=0)) <= 81 and (result.image != rgb).any()


@pytest.mark.parametrize("stage", ["saliency", "fill", "blend"])
def test_a_failing_stage_covers_the_face(stage, wild_photos, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("forced failure")

    anonymizer = Anonymizer()
    if stage == "saliency":
        monkeypatch.setattr(saliency, "attention_map", boom)
    elif stage == "fill":
        monkeypatch.setattr("anon_plugin.inference.fill.fill_many", boom)
    else:
        monkeypatch.setattr("anon_plugin.inference.blend.paste_back", boom)
    rgb = np.asarray(Image.open(wild_photos[0]).convert("RGB"))
    result = anonymizer.anonymize(rgb)
    assert result.failed_faces == len(result.faces) >= 1
    assert result.faces[0].error.startswith(stage) and "forced failure" in result.faces[0].error
    assert _pixelated(result, rgb)


def test_same_seed_same_output(wild_photos, anonymizer):
    a = anonymizer.anonymize(wild_photos[5]).image
    b = Anonymizer(seed=0, verify=False).anonymize(wild_photos[5]).image
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["blur", "pixelate", "solid"])
def test_every_method_runs_through_the_pipeline(method, wild_photos):
    rgb = np.asarray(Image.open(wild_photos[2]).convert("RGB"))
    result = Anonymizer(method=method, strength="small", verify=False).anonymize(rgb)
    assert result.faces and result.faces[0].method == method and not result.faces[0].covered
    assert (result.image != rgb).any()


def test_nothing_reaches_the_network(wild_photos, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("anon_plugin tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    result = Anonymizer(recognizer="ensemble", measure=True).anonymize(wild_photos[7])
    assert result.faces and result.faces[0].similarity is not None


def test_measure_reports_every_recognizer(wild_photos):
    face = Anonymizer(measure=True).anonymize(wild_photos[1]).faces[0]
    assert set(face.similarity) == {"sface_cosine", "facenet_cosine", "dlib_distance"}
    assert -1 <= face.similarity["sface_cosine"] < 0.99
    assert face.similarity["dlib_distance"] > 0.01


def test_still_matched_by_uses_each_recognizers_line():
    assert still_matched_by({"sface_cosine": 0.363, "facenet_cosine": 0.9, "dlib_distance": 0.59}) == ["sface", "dlib"]
    assert still_matched_by({"sface_cosine": 0.36, "facenet_cosine": 0.9, "dlib_distance": 0.6}) == []


def test_wild_photos_are_found_and_anonymized(wild_photos, anonymizer):
    done = sum(any(not f.covered for f in anonymizer.anonymize(p).faces) for p in wild_photos[::8])
    assert done == len(wild_photos[::8])


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="inpaint"):
        Anonymizer(method="paint")
    with pytest.raises(ValueError, match="ensemble"):
        Anonymizer(recognizer="arcface")
