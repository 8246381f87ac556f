from itertools import pairwise

import numpy as np
import pytest

from anon_plugin import Anonymizer
from anon_plugin.inference.mask import STRENGTHS, area_fraction, hole_mask, threshold_for


@pytest.fixture(scope="module")
def faces(eval_pairs):
    anonymizer = Anonymizer()
    records = [anonymizer.anonymize(a).faces for _, a, _ in eval_pairs[:12]]
    return [f[0] for f in records if f and f[0].attention is not None]


def test_mask_shrinks_strictly_as_the_threshold_rises(faces):
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    areas = np.array([[area_fraction(hole_mask(f.attention, f.region, t), f.region) for t in thresholds]
                      for f in faces])
    assert len(faces) >= 10
    assert (np.diff(areas, axis=1) <= 0).all(), "a higher threshold gave a larger mask"
    assert (np.diff(areas.mean(0)) < 0).all(), areas.mean(0)


def test_presets_are_ordered_and_mask_stays_in_the_region(faces):
    assert STRENGTHS["small"] > STRENGTHS["medium"] > STRENGTHS["large"]
    for face in faces:
        masks = [hole_mask(face.attention, face.region, STRENGTHS[s]) for s in ("small", "medium", "large")]
        for small, large in pairwise(masks):
            assert not (small & ~large).any()
        assert not (masks[-1] & ~face.region).any()


def test_cleaning_removes_specks_and_fills_holes():
    region = np.zeros((256, 256), bool)
    region[40:220, 40:220] = True
    attention = np.zeros((256, 256), np.float32)
    attention[80:180, 80:180] = 1.0
    attention[120:130, 120:130] = 0.0  # a hole
    attention[60, 60] = 1.0  # a speck
    mask = hole_mask(attention, region, 0.5)
    assert mask[125, 125] and not mask[60, 60]
    assert not hole_mask(np.zeros_like(attention), region, 0.5).any()


def test_threshold_options():
    assert threshold_for("medium", None) == STRENGTHS["medium"]
    assert threshold_for("medium", 0.8) == 0.8
    with pytest.raises(ValueError, match="small, medium, large"):
        threshold_for("huge", None)
    with pytest.raises(ValueError):
        threshold_for(None, 1.5)
