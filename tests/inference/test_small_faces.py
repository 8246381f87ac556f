"""Small faces in large photos: nine CelebA faces 17-61 px wide, in a 9,000 x 6,000 photo and in a 1,500 x 1,000 one.

Before tiling, detection read a 9,000 px photo shrunk to 2,048 px only: one of
such nine faces was found, the other eight were written out unchanged.
"""

from __future__ import annotations

from itertools import pairwise

import cv2
import numpy as np
import pytest

from anon_plugin.imageio import load_rgb
from anon_plugin.inference import detect
from anon_plugin.inference.pipeline import Anonymizer

WIDTHS = np.round(np.linspace(17, 61, 9)).astype(int)  # the detector's box on the face, in photo pixels
# Top-left corners in the 1,500 x 1,000 photo; x6 in the 9,000 x 6,000 one, where the second and the
# seventh faces straddle the edges of the full-resolution tiles (detect._spans: x 1744-2026, y 1430-1712).
SPOTS = [(100, 90), (332, 133), (583, 491), (873, 250), (1166, 716), (1300, 820), (291, 285), (716, 666),
         (1000, 500)]


@pytest.fixture(scope="module")
def tiles(data_root, eval_pairs) -> list[np.ndarray]:
    """Nine eval photos (one per identity), scaled so that the face is WIDTHS px wide."""
    out = []
    for (_, path, _), width in zip(eval_pairs[:9], WIDTHS, strict=True):
        rgb = load_rgb(path)
        scale = width / detect.detect_faces(rgb)[0].width
        out.append(cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                              interpolation=cv2.INTER_AREA))
    return out


def _group_photo(tiles: list[np.ndarray], factor: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(120, 12, (1000 * factor, 1500 * factor, 3)), 0, 255).astype(np.uint8)
    spots = [(factor * x, factor * y) for x, y in SPOTS]
    for tile, (x, y) in zip(tiles, spots, strict=True):
        photo[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return photo, spots


@pytest.mark.parametrize("factor", [6, 1], ids=["9000x6000", "1500x1000"])
def test_every_small_face_is_found_and_anonymized(tiles, factor):
    photo, spots = _group_photo(tiles, factor)
    result = Anonymizer(method="blur", verify=False).anonymize(photo)
    assert len(result.faces) == len(tiles)
    for tile, (x, y) in zip(tiles, spots, strict=True):
        inside = [f for f in result.faces if x <= (f.box[0] + f.box[2]) / 2 <= x + tile.shape[1]
                  and y <= (f.box[1] + f.box[3]) / 2 <= y + tile.shape[0]]
        assert len(inside) == 1, (x, y)
        face = inside[0]
        assert not face.covered, face.error
        x0, y0, x1, y1 = face.box.astype(int)
        changed = (result.image[y0:y1, x0:x1] != photo[y0:y1, x0:x1]).any(axis=2).mean()
        assert changed > 0.2, (x1 - x0, changed)


def test_tiles_cover_the_photo_and_share_the_overlap():
    for length, tile, overlap in [(9000, 2048, 282), (6000, 2048, 282), (2100, 2048, 100), (1500, 2048, 100)]:
        spans = detect._spans(length, tile, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(end - start <= tile for start, end in spans)
        assert all(a_end - b_start >= overlap for (_, a_end), (b_start, _) in pairwise(spans))


def test_a_face_found_twice_is_kept_once_and_a_half_hidden_face_is_kept():
    box = np.array([100.0, 100, 140, 150])
    a = detect.Detection(box, np.zeros((5, 2)), 0.9)
    b = detect.Detection(box + [2, -1, 1, 2], np.zeros((5, 2)), 0.95)
    behind = detect.Detection(np.array([125.0, 95, 150, 130]), np.zeros((5, 2)), 0.7)  # half inside a's box
    beside = detect.Detection(box + [45, 0, 45, 0], np.zeros((5, 2)), 0.8)
    merged = detect._merged([a, b, behind, beside])
    assert [id(d) for d in merged] == [id(b), id(beside), id(behind)]


def test_a_face_behind_another_is_found(data_root):
    # CelebA 000253.jpg: a man's face half behind the main one, and a third at the top left.
    faces = detect.detect_faces(load_rgb(data_root / "celeba" / "images" / "000253.jpg"))
    assert len(faces) == 3
