import numpy as np
from PIL import Image

from anon_plugin.inference import align, detect, landmarks


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 300, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -40.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = align.similarity(src, src @ rot.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rot, shift[:, None]]), atol=1e-10)


def test_inverse_is_exact():
    matrix = align.similarity(align.ARCFACE_112 * 3 + 50, align.CROP_TEMPLATE)
    identity = align.compose(align.invert(matrix), matrix)
    np.testing.assert_allclose(identity, np.hstack([np.eye(2), np.zeros((2, 1))]), atol=1e-12)
    points = np.array([[10.0, 20.0], [200.0, 31.5]])
    np.testing.assert_allclose(align.transform(align.invert(matrix), align.transform(matrix, points)), points)


def test_round_trip_through_the_crop_restores_the_face(wild_photos):
    rgb = np.asarray(Image.open(wild_photos[0]).convert("RGB"))
    face = detect.detect_faces(rgb)[0]
    points, _ = landmarks.face_landmarks(rgb, face)
    alignment = align.align(landmarks.five_points(points))
    crop = align.warp(rgb, alignment.matrix, alignment.size)
    assert crop.shape == (align.CROP_SIZE, align.CROP_SIZE, 3)
    # The eyes land on the template.
    eyes = align.transform(alignment.matrix, landmarks.five_points(points)[:2])
    np.testing.assert_allclose(eyes, align.CROP_TEMPLATE[:2], atol=6)
    # Crop -> photo: inside the face box the photo comes back up to resampling error.
    back = align.warp(crop, alignment.inverse, max(rgb.shape[:2]))[: rgb.shape[0], : rgb.shape[1]]
    x0, y0, x1, y1 = face.box.astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    error = np.abs(back[y0:y1, x0:x1].astype(int) - rgb[y0:y1, x0:x1].astype(int)).mean()
    assert error < 6, error
